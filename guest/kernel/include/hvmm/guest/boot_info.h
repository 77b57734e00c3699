// What the kernel learns from the PVH loader: hvm_start_info (Xen's PVH ABI), its memory
// map, command line and modules, copied into kernel memory before anything can overwrite
// them.
#pragma once

#include <cstdint>

namespace hvmm::guest {

inline constexpr uint32_t kStartInfoMagic = 0x336ec578;

// hvm_start_info as laid out by the loader (56 bytes).
struct __attribute__((packed)) HvmStartInfo {
  uint32_t magic;
  uint32_t version;
  uint32_t flags;
  uint32_t nr_modules;
  uint64_t modlist_paddr;
  uint64_t cmdline_paddr;
  uint64_t rsdp_paddr;
  uint64_t memmap_paddr;
  uint32_t memmap_entries;
  uint32_t reserved;
};
static_assert(sizeof(HvmStartInfo) == 56);

// hvm_memmap_table_entry (24 bytes).
struct __attribute__((packed)) HvmMemmapEntry {
  uint64_t addr;
  uint64_t size;
  uint32_t type;
  uint32_t reserved;
};
static_assert(sizeof(HvmMemmapEntry) == 24);

// hvm_modlist_entry (32 bytes).
struct __attribute__((packed)) HvmModlistEntry {
  uint64_t paddr;
  uint64_t size;
  uint64_t cmdline_paddr;
  uint64_t reserved;
};

inline constexpr uint32_t kMemmapRam = 1;
inline constexpr unsigned kMaxMemmapEntries = 64;
inline constexpr unsigned kMaxModules = 8;
inline constexpr unsigned kMaxCmdline = 1024;

// The boot information, copied out of the loader's structures.
struct BootInfo {
  uint64_t start_info_paddr = 0;
  HvmMemmapEntry memmap[kMaxMemmapEntries] = {};
  unsigned memmap_entries = 0;
  HvmModlistEntry modules[kMaxModules] = {};
  unsigned nr_modules = 0;
  char cmdline[kMaxCmdline] = {};
  uint64_t rsdp_paddr = 0;
  // Physical ranges holding the loader's structures (to reserve in memblock).
  uint64_t reserved_base[4] = {};
  uint64_t reserved_size[4] = {};
  unsigned reserved_count = 0;
};

// Parse hvm_start_info at physical `paddr` (identity mapped at boot) into `out`. Panics if
// the magic is wrong. Without a memory map (version 0 loaders) no RAM is reported.
void parse_start_info(uint64_t paddr, BootInfo& out);

// Print the memory map, command line and modules.
void print_boot_info(const BootInfo& info);

// The boot information parsed by parse_start_info().
const BootInfo& boot_info();

// Print one line per module with its first bytes (read through the direct map).
void print_modules(const BootInfo& info);

}  // namespace hvmm::guest
