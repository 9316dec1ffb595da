// Reading a libpq connection string without libpq (the server links none). Postgres-free, so
// it is tested with the listener's tests.
#pragma once

#include <string>
#include <string_view>

namespace eloqkv::pg {

// The host a connection string (key=value pairs, or a postgresql:// URI) names first: host, else
// hostaddr; empty for none (libpq's default, a local socket).
std::string ConninfoHost(std::string_view conninfo);

}  // namespace eloqkv::pg
