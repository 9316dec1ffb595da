// The way Postgres's C headers enter this C++ code: postgres.h first, inside extern "C".
// Files include this, then their own further headers in an extern "C" block.
#pragma once

extern "C" {
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/elog.h"
}
