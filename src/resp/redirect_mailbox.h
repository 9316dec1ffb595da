// RedirectMailbox: invalidation messages from one listener worker to clients of another, in
// memory the workers share. A client tracking keys on one worker may redirect its invalidations
// (CLIENT TRACKING on REDIRECT id) to a connection that another worker serves.
//
// Invariants:
//  * Posters append under a spinlock held for a copy of one message; each worker reads every
//    message and delivers those for its own clients.
//  * A reader that falls more than kSlots messages behind is told that it lost messages (and
//    then sends every client it could deliver to an invalidation of everything); it is never
//    handed a message that a poster overwrote while it was reading (a seqlock per ring).
//  * A key too long for a slot travels as "everything": never a missed invalidation.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace eloqkv::resp {

class RedirectMailbox {
 public:
  static constexpr size_t kSlots = 4096;
  static constexpr size_t kKeyWords = 30;  // keys up to 240 bytes travel as they are

  struct Message {
    uint64_t target = 0;
    bool everything = false;  // invalidate every key (the key did not fit, or a flush)
    std::string key;
  };

  static size_t RequiredBytes();
  static void Format(void* region);
  void Attach(void* region) { h_ = static_cast<Header*>(region); }
  bool attached() const { return h_ != nullptr; }

  // key == nullptr: invalidate everything.
  void Post(uint64_t target, const std::string* key);
  // Where a new reader starts: only messages posted from now on.
  uint64_t Position() const;
  // Appends the messages from *position on; false when some were lost.
  bool Read(uint64_t* position, std::vector<Message>* out) const;

  struct Header;

 private:
  Header* h_ = nullptr;
};

}  // namespace eloqkv::resp
