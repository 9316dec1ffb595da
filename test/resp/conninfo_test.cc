// ConninfoHost: the primary's host as primary_conninfo names it (INFO replication's
// master_host), in both of libpq's forms.
#include <gtest/gtest.h>

#include "pg/conninfo.h"

namespace eloqkv::pg {
namespace {

TEST(ConninfoHost, KeyValuePairs) {
  EXPECT_EQ(ConninfoHost("host=10.1.2.3 port=5432 user=rep"), "10.1.2.3");
  EXPECT_EQ(ConninfoHost("port=5432 host=/tmp/sock"), "/tmp/sock");
  EXPECT_EQ(ConninfoHost("user=x host = 'my host' "), "my host");
  EXPECT_EQ(ConninfoHost(R"(host='it\'s' port=1)"), "it's");
  EXPECT_EQ(ConninfoHost("hostaddr=10.0.0.9"), "10.0.0.9");
  EXPECT_EQ(ConninfoHost("host=db hostaddr=10.0.0.9"), "db") << "host first, as libpq shows";
  EXPECT_EQ(ConninfoHost("host=a,b port=1,2"), "a") << "the first of a list";
  EXPECT_EQ(ConninfoHost("application_name=x"), "") << "none: a local socket";
  EXPECT_EQ(ConninfoHost(""), "");
}

TEST(ConninfoHost, Uris) {
  EXPECT_EQ(ConninfoHost("postgresql://rep@db.example:5433/postgres?sslmode=require"),
            "db.example");
  EXPECT_EQ(ConninfoHost("postgres://[::1]:5432/db"), "::1");
  EXPECT_EQ(ConninfoHost("postgresql://h1,h2:5/db"), "h1");
  EXPECT_EQ(ConninfoHost("postgresql://%2Fvar%2Frun%2Fpostgresql/db"), "/var/run/postgresql");
  EXPECT_EQ(ConninfoHost("postgresql:///db?sslmode=x&host=10.0.0.1"), "10.0.0.1");
  EXPECT_EQ(ConninfoHost("postgresql:///db?hostaddr=10.0.0.2"), "10.0.0.2");
  EXPECT_EQ(ConninfoHost("postgresql:///db"), "");
  EXPECT_EQ(ConninfoHost("postgresql://x%zz/db"), "x%zz") << "not an escape: kept";
}

}  // namespace
}  // namespace eloqkv::pg
