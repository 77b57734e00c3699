// Durations as people type them: "500ms", "10s", "2m", "1h"; a bare number is seconds.
#pragma once

#include <chrono>
#include <string_view>

#include "hvmm/base/result.h"

namespace hvmm::args {

// Parse `text` as a duration of whole milliseconds. Errors quote the text.
Result<std::chrono::milliseconds> parse_duration(std::string_view text);

}  // namespace hvmm::args
