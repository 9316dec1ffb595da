// SharedClientTable: the clients of every listener worker, in memory the workers share, so that
// CLIENT LIST and CLIENT KILL see all of them whichever worker runs the command.
//
// Invariants:
//  * A slot belongs to one worker from Claim to Release (its client_id is non-zero meanwhile);
//    only that worker writes the slot's snapshot, under the slot's sequence counter (odd while
//    writing), so a reader copies a consistent snapshot or retries.
//  * `kill` and `unblock` are the only fields another worker writes: the id of the client to
//    close, or to wake from a blocking command (CLIENT UNBLOCK). The owner acts at its next
//    sweep or loop pass when that id is its client's.
//  * A slot records the process that claimed it; a worker starting frees the slots of processes
//    that are gone.
//  * Strings longer than their field are cut (names to 63 bytes); nothing else is lost.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace eloqkv::resp {

// One client as another worker sees it (plain bytes: it is copied in and out of shared memory).
struct ClientSnapshot {
  uint64_t id = 0;
  int64_t created_ms = 0;
  int64_t last_active_ms = 0;
  int32_t fd = -1;
  int32_t multi = -1;  // commands queued in MULTI, -1 outside one
  uint32_t watch = 0;
  int32_t protocol = 2;
  int32_t subscriptions = 0;  // SUBSCRIBE __redis__:invalidate
  int64_t redirect = -1;      // CLIENT TRACKING: -1 off, 0 to itself, else the client id
  uint8_t broken_redirect = 0;
  uint8_t blocked = 0;        // kNotBlocked, kBlocked (WAIT, a cache fill), kPostponed (a pause)
  uint32_t park = 0;          // which of its waits (Session::parks)
  uint64_t input_bytes = 0;   // unparsed input buffered
  uint64_t output_bytes = 0;  // replies not yet sent
  char addr[64] = {};
  char laddr[64] = {};
  char name[64] = {};
  char cmd[32] = {};
  char user[64] = {};

  static constexpr uint8_t kNotBlocked = 0, kBlocked = 1, kPostponed = 2;
  static void Set(char* field, size_t size, std::string_view value);
};

class SharedClientTable {
 public:
  static size_t RequiredBytes(size_t slots);
  static void Format(void* region, size_t slots);
  void Attach(void* region);
  size_t slots() const;

  // A free slot for client `id`, or -1 when the table is full (the client is then visible only to
  // its own worker).
  int Claim(uint64_t id);
  void Publish(int slot, const ClientSnapshot& snapshot);
  void Release(int slot);
  // Frees the slots of workers that exited without releasing them (a worker that failed).
  void ReleaseOrphans();
  // Whether a client with this id is connected to any worker (a scan of the ids only).
  bool Contains(uint64_t id) const;
  bool kill_requested(int slot) const;
  void RequestKill(int slot, uint64_t client_id);
  // CLIENT UNBLOCK from another worker, for one wait (`park`) of one client: 1 (as by a
  // timeout) or 2 (with an error). The owner takes it (0: none) for the wait it is in; a request
  // for an earlier client of the slot, or an earlier wait, is dropped. False: an id too large
  // to be named in the request.
  bool RequestUnblock(int slot, uint64_t client_id, uint32_t park, int how);
  int TakeUnblock(int slot, uint32_t park);

  // Calls f(slot, snapshot) for every claimed slot, with a consistent copy of it.
  template <typename F>
  void ForEach(F&& f) const {
    ClientSnapshot snap;
    for (size_t i = 0; i < slots(); ++i) {
      if (Read(static_cast<int>(i), &snap)) f(static_cast<int>(i), snap);
    }
  }

  struct Header;
  struct Slot;

 private:
  bool Read(int slot, ClientSnapshot* out) const;
  Header* h_ = nullptr;
};

}  // namespace eloqkv::resp
