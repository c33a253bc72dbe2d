// Include this instead of <catch2/catch.hpp> in tests that use LibTorch. Debian's LibTorch logs
// through glog, whose CHECK macro (an abort, not a test assertion) would otherwise replace
// Catch's CHECK in any file that includes torch headers after Catch.
#pragma once

#include <torch/script.h>

#undef CHECK
#include "catch.h"
