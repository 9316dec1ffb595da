#include "pg/conninfo.h"

#include <algorithm>
#include <cctype>

namespace eloqkv::pg {

std::string ConninfoHost(std::string_view c) {
  auto first_of_list = [](std::string_view v) { return std::string(v.substr(0, v.find(','))); };
  // %XX as the URI form allows (a socket directory is written %2Fvar%2Frun%2Fpostgresql).
  auto decoded = [](std::string_view v) {
    std::string out;
    for (size_t i = 0; i < v.size(); ++i) {
      if (v[i] == '%' && i + 2 < v.size() && std::isxdigit(static_cast<unsigned char>(v[i + 1])) &&
          std::isxdigit(static_cast<unsigned char>(v[i + 2]))) {
        out.push_back(static_cast<char>(std::stoi(std::string(v.substr(i + 1, 2)), nullptr, 16)));
        i += 2;
      } else {
        out.push_back(v[i]);
      }
    }
    return out;
  };
  for (std::string_view scheme : {"postgresql://", "postgres://"}) {
    if (!c.starts_with(scheme)) continue;
    std::string_view rest = c.substr(scheme.size());
    const size_t query = rest.find('?');
    std::string_view authority = rest.substr(0, rest.find_first_of("/?"));
    if (const size_t at = authority.rfind('@'); at != std::string_view::npos)
      authority.remove_prefix(at + 1);
    std::string host;
    if (authority.starts_with('[')) {
      host = std::string(authority.substr(1, authority.find(']') - 1));
    } else {
      host = first_of_list(authority);
      host = decoded(host.substr(0, host.find(':')));
    }
    if (!host.empty() || query == std::string_view::npos) return host;
    // No host before the path: the query's host= or hostaddr= names it.
    std::string from_query, addr_from_query;
    std::string_view params = rest.substr(query + 1);
    while (!params.empty()) {
      const std::string_view param = params.substr(0, params.find('&'));
      params.remove_prefix(std::min(params.size(), param.size() + 1));
      if (param.starts_with("host=")) from_query = first_of_list(decoded(param.substr(5)));
      if (param.starts_with("hostaddr=")) addr_from_query = first_of_list(decoded(param.substr(9)));
    }
    return from_query.empty() ? addr_from_query : from_query;
  }
  std::string host, hostaddr;
  size_t i = 0;
  auto skip_spaces = [&] {
    while (i < c.size() && std::isspace(static_cast<unsigned char>(c[i]))) ++i;
  };
  while (true) {
    skip_spaces();
    if (i >= c.size()) break;
    const size_t eq = c.find('=', i);
    if (eq == std::string_view::npos) break;
    std::string_view key = c.substr(i, eq - i);
    while (!key.empty() && std::isspace(static_cast<unsigned char>(key.back())))
      key.remove_suffix(1);
    i = eq + 1;
    skip_spaces();
    std::string value;
    if (i < c.size() && c[i] == '\'') {
      for (++i; i < c.size() && c[i] != '\''; ++i) {
        if (c[i] == '\\' && i + 1 < c.size()) ++i;
        value.push_back(c[i]);
      }
      ++i;
    } else {
      for (; i < c.size() && !std::isspace(static_cast<unsigned char>(c[i])); ++i) {
        if (c[i] == '\\' && i + 1 < c.size()) ++i;
        value.push_back(c[i]);
      }
    }
    if (key == "host") host = first_of_list(value);
    if (key == "hostaddr") hostaddr = first_of_list(value);
  }
  return host.empty() ? hostaddr : host;
}

}  // namespace eloqkv::pg
