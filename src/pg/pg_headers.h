// The way Postgres's C headers enter this C++ code: postgres.h first, inside extern "C".
// Files include this, then their own further headers in an extern "C" block.
#pragma once

extern "C" {
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/elog.h"
}

// SCRAM secrets (libpq/scram.h, which pulls in GSSAPI headers through libpq-be.h; these two are
// all we use of it).
extern "C" {
char* pg_be_scram_build_secret(const char* password);
bool scram_verify_plain_password(const char* username, const char* password, const char* secret);
}
