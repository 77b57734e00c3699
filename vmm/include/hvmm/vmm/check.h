// HVMM_CHECK(result): return the Error of an already computed (possibly move-only) Result.
//
// HVMM_TRY copies its argument, which move-only Results (unique_ptr, Stage2Map) forbid;
// this inspects a named Result in place instead.
#pragma once

#include "hvmm/base/result.h"

#define HVMM_CHECK(result)                    \
  do {                                        \
    if (!(result).ok()) {                     \
      return ::hvmm::Error((result).error()); \
    }                                         \
  } while (false)
