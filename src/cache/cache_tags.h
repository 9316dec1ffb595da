// Tags: a cache may name a column whose value tags each row (e.g. its tenant), so that
// eloqkv.invalidate_tag drops every row with one tag.
//
// Invariants:
//  * Every filled row with a tag has a record [u32 length][tag][row key] in the cache's tag
//    keyspace (kTagKeyspacePrefix + its keyspace), written in the same batch as the row and
//    expiring with it. Records may outlive their row's tag (a row refilled with another tag, a
//    row invalidated by key): an invalidation through a stale record drops a row one time too
//    many, never keeps one it should drop.
//  * A tag invalidation bumps every stripe (so no fill that began before it lands) before it
//    deletes the rows its records name.
#pragma once

#include <string>

#include "engine/eloqkv.h"

namespace eloqkv::cache {

std::string TagKeyspaceName(const char* keyspace);
// The prefix of one tag's records; a record is the prefix followed by the row key.
std::string TagRecordPrefix(const char* tag, size_t len);
// The tag keyspace's id, created on first use. C++ only (Guarded callers).
eloqkv::Status TagKeyspace(eloqkv::Engine* e, const char* keyspace, bool create, uint32_t* id,
                           bool* exists);

}  // namespace eloqkv::cache
