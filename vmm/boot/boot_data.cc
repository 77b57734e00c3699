// Serialization of the PVH boot data (Xen's hvm_start_info ABI, version 1).
#include "hvmm/vmm/boot/boot_data.h"

#include <algorithm>
#include <cstring>

namespace hvmm::vmm {
namespace {

constexpr uint64_t kGdtEntries[] = {
    0x0000000000000000,  // null
    0x00cf9b000000ffff,  // code: base 0, limit 4 GiB, execute/read, 32-bit
    0x00cf93000000ffff,  // data: base 0, limit 4 GiB, read/write
    0x00008b0000000067,  // TSS: base 0, limit 0x67, busy 32-bit TSS
};
constexpr uint32_t kMemmapRam = 1;

// A little-endian byte buffer for the fixed-layout boot structures.
class LeWriter {
 public:
  void u32(uint32_t value) { put(value, 4); }
  void u64(uint64_t value) { put(value, 8); }
  std::span<const uint8_t> bytes() const { return bytes_; }

 private:
  void put(uint64_t value, int width) {
    for (int i = 0; i < width; ++i) {
      bytes_.push_back(static_cast<uint8_t>(value >> (8 * i)));
    }
  }
  std::vector<uint8_t> bytes_;
};

// Write the four GDT descriptors.
Result<void> write_gdt(GuestAccess& memory) {
  LeWriter gdt;
  for (uint64_t entry : kGdtEntries) {
    gdt.u64(entry);
  }
  return memory.write(kGdtAddress, gdt.bytes());
}

// Write the hvm_start_info header itself.
Result<void> write_start_info(GuestAccess& memory, const BootInfo& info) {
  LeWriter start;
  start.u32(kStartInfoMagic);
  start.u32(1);  // version
  start.u32(0);  // flags
  start.u32(static_cast<uint32_t>(info.modules.size()));
  start.u64(info.modules.empty() ? 0 : kModlistAddress.value());
  start.u64(kCmdlineAddress.value());
  start.u64(0);  // rsdp_paddr: no ACPI tables
  start.u64(kMemmapAddress.value());
  start.u32(static_cast<uint32_t>(info.ram.size()));
  start.u32(0);  // reserved
  return memory.write(kStartInfoAddress, start.bytes());
}

// Write the module list and the memory map.
Result<void> write_tables(GuestAccess& memory, const BootInfo& info) {
  LeWriter modules;
  for (const BootModule& module : info.modules) {
    modules.u64(module.range.start.value());
    modules.u64(module.range.size);
    modules.u64(0);  // no per-module command line
    modules.u64(0);
  }
  if (!info.modules.empty()) {
    HVMM_TRY(memory.write(kModlistAddress, modules.bytes()));
  }
  LeWriter memmap;
  for (const RamRegion& region : info.ram) {
    memmap.u64(region.range.start.value());
    memmap.u64(region.range.size);
    memmap.u32(kMemmapRam);
    memmap.u32(0);
  }
  return memory.write(kMemmapAddress, memmap.bytes());
}

}  // namespace

// The command line must fit its slot with its NUL and contain no NUL itself.
Result<void> check_cmdline(const std::string& cmdline) {
  if (cmdline.size() + 1 > kMaxCmdlineBytes) {
    return make_error(ErrorCode::kInvalidArgument, "cmdline: {} bytes long; at most {} bytes fit",
                      cmdline.size(), kMaxCmdlineBytes - 1);
  }
  if (cmdline.find('\0') != std::string::npos) {
    return make_error(ErrorCode::kInvalidArgument, "cmdline: contains a NUL byte");
  }
  return Ok();
}

// Place the module at the top of low RAM unless that collides with the kernel or boot data.
Result<IpaRange> place_module(uint64_t size, const std::vector<RamRegion>& ram,
                              const PvhKernel& kernel) {
  uint64_t pages = align_up(size, kPageSize);
  uint64_t low_end = ram.empty() ? 0 : ram.front().range.end().value();
  if (size == 0 || pages > low_end) {
    return make_error(ErrorCode::kInvalidArgument,
                      "initrd of {} bytes does not fit in {:#x} bytes of low RAM", size, low_end);
  }
  IpaRange range{Ipa(low_end - pages), size};
  bool clash = range.overlaps(kBootData) ||
               std::any_of(kernel.segments.begin(), kernel.segments.end(),
                           [&](const KernelSegment& s) { return range.overlaps(s.range); });
  if (clash) {
    return make_error(ErrorCode::kInvalidArgument,
                      "initrd of {} bytes at {} would overlap the kernel or boot data: raise "
                      "memory_bytes",
                      size, range);
  }
  return range;
}

// Write every boot structure; the order does not matter since the guest is not running.
Result<Ipa> write_boot_data(GuestAccess& memory, const BootInfo& info) {
  HVMM_TRY(check_cmdline(info.cmdline));
  if (info.modules.size() > kMaxModules || info.ram.size() > kMaxMemmapEntries) {
    return make_error(ErrorCode::kInvalidArgument, "too many modules ({}) or RAM regions ({})",
                      info.modules.size(), info.ram.size());
  }
  HVMM_TRY(write_gdt(memory));
  HVMM_TRY(write_start_info(memory, info));
  HVMM_TRY(write_tables(memory, info));
  std::vector<uint8_t> cmdline(info.cmdline.begin(), info.cmdline.end());
  cmdline.push_back(0);
  HVMM_TRY(memory.write(kCmdlineAddress, cmdline));
  return kStartInfoAddress;
}

}  // namespace hvmm::vmm
