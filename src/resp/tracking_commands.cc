// Client-side caching commands: CLIENT TRACKING / CACHING / GETREDIR / TRACKINGINFO, and
// SUBSCRIBE / UNSUBSCRIBE of the one channel they use, __redis__:invalidate (a RESP2 client
// receives the invalidations of the clients that redirect to it there). Redis's replies and
// error strings.
#include "resp/command_util.h"
#include "resp/commands.h"
#include "resp/text.h"

namespace eloqkv::resp {

namespace {

constexpr std::string_view kInvalidateChannel = "__redis__:invalidate";

void Tracking(Call& c) {
  Session::Tracking options;
  bool bcast = false;
  const size_t n = c.args.size();
  for (size_t j = 3; j < n; ++j) {
    const bool more = j + 1 < n;
    const std::string_view a = c.args[j];
    if (EqualsIgnoreCase(a, "redirect") && more) {
      ++j;
      if (options.redirect != 0) {
        c.reply.Error("ERR A client can only redirect to a single other client");
        return;
      }
      int64_t id = 0;
      if (!ParseIntArg(c, c.args[j], &id)) return;
      if (id <= 0 || !c.dispatcher.clients()->Exists(static_cast<uint64_t>(id))) {
        c.reply.Error("ERR The client ID you want redirect to does not exist");
        return;
      }
      options.redirect = static_cast<uint64_t>(id);
    } else if (EqualsIgnoreCase(a, "bcast")) {
      bcast = true;
    } else if (EqualsIgnoreCase(a, "optin")) {
      options.optin = true;
    } else if (EqualsIgnoreCase(a, "optout")) {
      options.optout = true;
    } else if (EqualsIgnoreCase(a, "noloop")) {
      options.noloop = true;
    } else if (EqualsIgnoreCase(a, "prefix") && more) {
      ++j;
      c.reply.Error("ERR PREFIX option requires BCAST mode to be enabled");
      return;
    } else {
      c.reply.Error(kSyntaxError);
      return;
    }
  }
  Session::Tracking& t = c.session.tracking;
  if (EqualsIgnoreCase(c.args[2], "on")) {
    if (bcast) {
      // Broadcast mode reports every key under a prefix, read or not: the change feed carries
      // fingerprints, not key names, so it cannot be served. Refused rather than half-done.
      c.reply.Error(
          "ERR eloqkv does not support BCAST tracking; use the default mode, which "
          "reports every change of the keys the client read");
      return;
    }
    if (options.optin && options.optout) {
      c.reply.Error("ERR You can't specify both OPTIN mode and OPTOUT mode");
      return;
    }
    if (t.on && ((options.optin && t.optout) || (options.optout && t.optin))) {
      c.reply.Error(
          "ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, "
          "and then re-enabling it with a different mode.");
      return;
    }
    // Turning it on again keeps what the client is already tracked for (as Redis does).
    c.dispatcher.SetTracking(c.session, true);
    t.redirect = options.redirect;
    t.optin = options.optin;
    t.optout = options.optout;
    t.noloop = options.noloop;
    t.broken_redirect = false;
    c.reply.SimpleString("OK");
  } else if (EqualsIgnoreCase(c.args[2], "off")) {
    c.dispatcher.SetTracking(c.session, false);
    c.reply.SimpleString("OK");
  } else {
    c.reply.Error(kSyntaxError);
  }
}

void Caching(Call& c) {
  Session::Tracking& t = c.session.tracking;
  if (!t.on) {
    c.reply.Error(
        "ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN "
        "or OPTOUT mode enabled");
    return;
  }
  if (EqualsIgnoreCase(c.args[2], "yes")) {
    if (!t.optin) {
      c.reply.Error("ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.");
      return;
    }
  } else if (EqualsIgnoreCase(c.args[2], "no")) {
    if (!t.optout) {
      c.reply.Error("ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.");
      return;
    }
  } else {
    c.reply.Error(kSyntaxError);
    return;
  }
  t.caching = true;
  c.reply.SimpleString("OK");
}

void TrackingInfo(Call& c) {
  const Session::Tracking& t = c.session.tracking;
  c.reply.MapHeader(3);
  c.reply.Bulk("flags");
  std::vector<std::string_view> flags{t.on ? "on" : "off"};
  if (t.optin) flags.push_back("optin");
  if (t.optin && t.caching) flags.push_back("caching-yes");
  if (t.optout) flags.push_back("optout");
  if (t.optout && t.caching) flags.push_back("caching-no");
  if (t.noloop) flags.push_back("noloop");
  if (t.broken_redirect) flags.push_back("broken_redirect");
  c.reply.SetHeader(flags.size());
  for (std::string_view f : flags) c.reply.Bulk(f);
  c.reply.Bulk("redirect");
  c.reply.Integer(t.on ? static_cast<int64_t>(t.redirect) : -1);
  c.reply.Bulk("prefixes");
  c.reply.ArrayHeader(0);
}

// The pub/sub confirmation Redis sends per channel: [kind, channel, subscription count].
void Confirm(Call& c, std::string_view kind, const std::string_view* channel) {
  if (c.session.protocol == 2)
    c.reply.ArrayHeader(3);
  else
    c.reply.PushHeader(3);
  c.reply.Bulk(kind);
  if (channel != nullptr)
    c.reply.Bulk(*channel);
  else
    c.reply.Null();
  c.reply.Integer(c.session.subscribed_invalidate ? 1 : 0);
}

void Subscribe(Call& c) {
  if (c.session.in_multi || c.in_exec) {
    c.reply.Error("ERR Command not allowed inside a transaction");
    return;
  }
  for (size_t i = 1; i < c.args.size(); ++i) {
    if (c.args[i] != kInvalidateChannel) {
      c.reply.Error("ERR eloqkv serves pub/sub only for client-side caching: SUBSCRIBE " +
                    std::string(kInvalidateChannel) + " is the one channel available");
      return;
    }
  }
  for (size_t i = 1; i < c.args.size(); ++i) {
    c.session.subscribed_invalidate = true;
    Confirm(c, "subscribe", &c.args[i]);
  }
}

void Unsubscribe(Call& c) {
  if (c.args.size() == 1) {
    if (c.session.subscribed_invalidate) {
      c.session.subscribed_invalidate = false;
      Confirm(c, "unsubscribe", &kInvalidateChannel);
    } else {
      Confirm(c, "unsubscribe", nullptr);
    }
    return;
  }
  for (size_t i = 1; i < c.args.size(); ++i) {
    if (c.args[i] == kInvalidateChannel) c.session.subscribed_invalidate = false;
    Confirm(c, "unsubscribe", &c.args[i]);
  }
}

}  // namespace

bool ClientTrackingSubcommand(Call& c, std::string_view sub) {
  const size_t n = c.args.size();
  if (sub == "tracking" && n >= 3) {
    Tracking(c);
  } else if (sub == "caching" && n == 3) {
    Caching(c);
  } else if (sub == "getredir" && n == 2) {
    c.reply.Integer(c.session.tracking.on ? static_cast<int64_t>(c.session.tracking.redirect) : -1);
  } else if (sub == "trackinginfo" && n == 2) {
    TrackingInfo(c);
  } else {
    return false;
  }
  return true;
}

void RegisterTrackingCommands(std::vector<Dispatcher::Command>* out) {
  using D = Dispatcher;
  const std::vector<D::Command> cmds = {
      {"subscribe", -2, Subscribe, D::kNoEngine},
      {"unsubscribe", -1, Unsubscribe, D::kNoEngine},
  };
  out->insert(out->end(), cmds.begin(), cmds.end());
}

}  // namespace eloqkv::resp
