// KVM binary statistics: the layout checked once, then one pread of the data block a reading.
#include "hvmm/vmm/kvm/kvm_stats.h"

#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "hvmm/vmm/kvm/ioctl_error.h"

namespace hvmm::vmm {
namespace {

// An error about a malformed stats file, naming the field.
template <typename... Args>
Error malformed(fmt::format_string<Args...> format, Args&&... args) {
  return Error{ErrorCode::kInternal,
               "KVM stats file: " + fmt::format(format, std::forward<Args>(args)...)};
}

// The header's sizes and offsets within the limits, and the parts it locates not overlapping
// the header.
Result<void> check_header(const KvmStatsHeaderWire& header) {
  if (header.name_size == 0 || header.name_size > kKvmStatsMaxNameSize)
    return malformed("name_size {} is outside 1..{}", header.name_size, kKvmStatsMaxNameSize);
  if (header.num_desc > kKvmStatsMaxDescriptors)
    return malformed("num_desc {} is above {}", header.num_desc, kKvmStatsMaxDescriptors);
  const uint32_t header_size = sizeof(KvmStatsHeaderWire);
  if (header.id_offset < header_size || header.desc_offset < header_size ||
      header.data_offset < header_size)
    return malformed("id_offset {}, desc_offset {} or data_offset {} lies inside the header",
                     header.id_offset, header.desc_offset, header.data_offset);
  return Ok();
}

// The NUL-terminated string at the start of `bytes` (which must hold a NUL).
Result<std::string> terminated(std::span<const uint8_t> bytes, const char* what) {
  const auto nul = std::find(bytes.begin(), bytes.end(), uint8_t{0});
  if (nul == bytes.end())
    return malformed("{} is not NUL-terminated within name_size", what);
  return std::string(bytes.begin(), nul);
}

// One descriptor from its bytes (fixed part + name), checked against the data block's start:
// its values must fit in a 32-bit file offset.
Result<KvmStatField> parse_descriptor(std::span<const uint8_t> bytes, uint32_t index) {
  KvmStatsDescWire wire;
  std::memcpy(&wire, bytes.data(), sizeof(wire));
  auto name = terminated(bytes.subspan(sizeof(wire)), "a descriptor's name");
  HVMM_TRY(name);
  if (name->empty())
    return malformed("descriptor {} has an empty name", index);
  if (wire.size == 0)
    return malformed("descriptor {} ({}) has size 0", index, *name);
  if (wire.offset % sizeof(uint64_t) != 0)
    return malformed("descriptor {} ({}) has offset {}, not a multiple of 8", index, *name,
                     wire.offset);
  return KvmStatField{std::move(*name), wire.flags, wire.offset, wire.size};
}

// The end of the data block the fields cover, or an error when it leaves 32-bit offsets.
Result<uint32_t> data_size(const KvmStatsLayout& layout) {
  uint64_t end = 0;
  for (const KvmStatField& field : layout.fields)
    end = std::max(end, uint64_t{field.offset} + uint64_t{field.size} * sizeof(uint64_t));
  if (uint64_t{layout.data_offset} + end > UINT32_MAX)
    return malformed("the data block ends past 4 GiB ({} + {} bytes)", layout.data_offset, end);
  return static_cast<uint32_t>(end);
}

}  // namespace

const KvmStatField* KvmStatsLayout::find(std::string_view name) const {
  for (const KvmStatField& field : fields) {
    if (field.name == name)
      return &field;
  }
  return nullptr;
}

// Header, id, then the descriptor array in one read (num_desc * (16 + name_size) bytes).
Result<KvmStatsLayout> read_kvm_stats_layout(const KvmStatsReadAt& read_at) {
  KvmStatsHeaderWire header;
  HVMM_TRY(read_at(0, std::span(reinterpret_cast<uint8_t*>(&header), sizeof(header))));
  HVMM_TRY(check_header(header));
  KvmStatsLayout layout;
  layout.data_offset = header.data_offset;
  std::vector<uint8_t> id(header.name_size);
  HVMM_TRY(read_at(header.id_offset, id));
  auto id_text = terminated(id, "the id");
  HVMM_TRY(id_text);
  layout.id = std::move(*id_text);
  const size_t stride = sizeof(KvmStatsDescWire) + header.name_size;
  std::vector<uint8_t> descriptors(stride * header.num_desc);
  HVMM_TRY(read_at(header.desc_offset, descriptors));
  for (uint32_t i = 0; i < header.num_desc; ++i) {
    auto field = parse_descriptor(std::span(descriptors).subspan(i * stride, stride), i);
    HVMM_TRY(field);
    layout.fields.push_back(std::move(*field));
  }
  auto size = data_size(layout);
  HVMM_TRY(size);
  layout.data_size = *size;
  return layout;
}

// The fd is read with pread only, so one fd serves concurrent readers.
Result<KvmStatsFile> KvmStatsFile::open(int fd, const std::string& what) {
  UniqueFd stats(::ioctl(fd, KVM_GET_STATS_FD, 0));
  if (!stats.valid())
    return ioctl_error(fmt::format("KVM_GET_STATS_FD on {}", what).c_str());
  return adopt(std::move(stats), what);
}

Result<KvmStatsFile> KvmStatsFile::adopt(UniqueFd stats, const std::string& what) {
  const int raw = stats.get();
  auto layout = read_kvm_stats_layout([&](uint64_t offset, std::span<uint8_t> out) -> Result<void> {
    const ssize_t n = ::pread(raw, out.data(), out.size(), static_cast<off_t>(offset));
    if (n < 0)
      return make_error(ErrorCode::kInternal, "reading the KVM stats of {}: {}", what,
                        std::strerror(errno));
    if (static_cast<size_t>(n) != out.size())
      return malformed("{} bytes wanted at offset {}, {} there", out.size(), offset, n);
    return Ok();
  });
  if (!layout)
    return make_error(layout.error().code, "{} ({})", layout.error().message, what);
  return KvmStatsFile(std::move(stats), std::move(*layout), what);
}

// One pread of the data block, then each name's first u64.
Result<std::vector<std::optional<uint64_t>>> KvmStatsFile::read(
    std::span<const std::string_view> names) const {
  std::vector<uint64_t> data((layout_.data_size + sizeof(uint64_t) - 1) / sizeof(uint64_t));
  const ssize_t n = ::pread(fd_.get(), data.data(), layout_.data_size, layout_.data_offset);
  if (n != static_cast<ssize_t>(layout_.data_size))
    return make_error(ErrorCode::kInternal, "reading the KVM stats of {}: {}", what_,
                      n < 0 ? std::strerror(errno) : "short read");
  std::vector<std::optional<uint64_t>> values;
  values.reserve(names.size());
  for (std::string_view name : names) {
    const KvmStatField* field = layout_.find(name);
    values.push_back(field != nullptr ? std::optional(data[field->offset / sizeof(uint64_t)])
                                      : std::nullopt);
  }
  return values;
}

}  // namespace hvmm::vmm
