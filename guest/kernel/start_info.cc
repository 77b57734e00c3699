// Parsing of hvm_start_info: while the boot page tables identity-map the first GiB, the
// loader's structures are read through their physical addresses and copied into BootInfo.
#include "hvmm/guest/boot_info.h"

#include "hvmm/guest/console.h"
#include "hvmm/guest/mm/arch_hooks.h"
#include "hvmm/guest/panic.h"
#include "hvmm/guest/runtime.h"

namespace hvmm::guest {
namespace {

constexpr uint64_t kIdentityLimit = uint64_t{1} << 30;
const BootInfo* g_boot_info = nullptr;

// Return a pointer to identity-mapped physical memory, panicking beyond the boot mapping.
const void* boot_phys(uint64_t paddr, uint64_t size, const char* what) {
  if (paddr + size > kIdentityLimit || paddr + size < paddr)
    panic("start_info: %s at %lx (+%lx) is beyond the first GiB", what, paddr, size);
  return reinterpret_cast<const void*>(paddr);
}

// Remember a loader structure so memblock keeps it.
void note_reserved(BootInfo& out, uint64_t base, uint64_t size) {
  if (out.reserved_count < 4 && size != 0) {
    out.reserved_base[out.reserved_count] = base;
    out.reserved_size[out.reserved_count++] = size;
  }
}

// Copy the NUL-terminated command line (truncated to kMaxCmdline - 1 bytes).
void copy_cmdline(uint64_t paddr, BootInfo& out) {
  if (paddr == 0)
    return;
  const char* src = static_cast<const char*>(boot_phys(paddr, 1, "cmdline"));
  unsigned n = 0;
  while (n + 1 < kMaxCmdline && src[n] != '\0') {
    out.cmdline[n] = src[n];
    ++n;
  }
  out.cmdline[n] = '\0';
  note_reserved(out, paddr, n + 1);
}

}  // namespace

// Validate the magic, then copy the memory map, modules and command line.
void parse_start_info(uint64_t paddr, BootInfo& out) {
  g_boot_info = &out;
  const auto* si =
      static_cast<const HvmStartInfo*>(boot_phys(paddr, sizeof(HvmStartInfo), "start_info"));
  if (si->magic != kStartInfoMagic)
    panic("start_info at %lx: bad magic %x (expected %x)", paddr, si->magic, kStartInfoMagic);
  out.start_info_paddr = paddr;
  note_reserved(out, paddr, sizeof(HvmStartInfo));
  out.rsdp_paddr = si->rsdp_paddr;
  copy_cmdline(si->cmdline_paddr, out);
  if (si->version >= 1 && si->memmap_paddr != 0) {
    unsigned n = si->memmap_entries < kMaxMemmapEntries ? si->memmap_entries : kMaxMemmapEntries;
    uint64_t bytes = uint64_t{n} * sizeof(HvmMemmapEntry);
    memcpy(out.memmap, boot_phys(si->memmap_paddr, bytes, "memmap"), bytes);
    out.memmap_entries = n;
    note_reserved(out, si->memmap_paddr, bytes);
  }
  if (si->nr_modules != 0 && si->modlist_paddr != 0) {
    unsigned n = si->nr_modules < kMaxModules ? si->nr_modules : kMaxModules;
    uint64_t bytes = uint64_t{n} * sizeof(HvmModlistEntry);
    memcpy(out.modules, boot_phys(si->modlist_paddr, bytes, "modlist"), bytes);
    out.nr_modules = n;
    note_reserved(out, si->modlist_paddr, bytes);
  }
}

// Print what the loader passed, one line per memory-map entry and module.
void print_boot_info(const BootInfo& info) {
  printk_level(kLogInfo, "start_info at %lx: %u memory map entries, %u modules\n",
               info.start_info_paddr, info.memmap_entries, info.nr_modules);
  for (unsigned i = 0; i < info.memmap_entries; ++i) {
    const HvmMemmapEntry& e = info.memmap[i];
    printk_level(kLogInfo, "  mem [%016lx-%016lx) type %u\n", e.addr, e.addr + e.size, e.type);
  }
  for (unsigned i = 0; i < info.nr_modules; ++i)
    printk_level(kLogInfo, "  module %u at %lx size %lu\n", i, info.modules[i].paddr,
                 info.modules[i].size);
  printk("cmdline: \"%s\"\n", info.cmdline);
}

}  // namespace hvmm::guest

namespace hvmm::guest {

// The parsed boot information (valid after parse_start_info()).
const BootInfo& boot_info() {
  return *g_boot_info;
}

// "module <i>: [start, end) <size> bytes, starts with "<printable prefix>"".
void print_modules(const BootInfo& info) {
  for (unsigned i = 0; i < info.nr_modules; ++i) {
    const HvmModlistEntry& m = info.modules[i];
    char head[17] = {};
    const auto* bytes = static_cast<const char*>(mm::arch::phys_to_virt(PhysAddr(m.paddr)));
    for (unsigned j = 0; j < 16 && j < m.size; ++j)
      head[j] = (bytes[j] >= 0x20 && bytes[j] < 0x7f) ? bytes[j] : '.';
    printk("module %u: [%lx-%lx) %lu bytes, starts with \"%s\"\n", i, m.paddr, m.paddr + m.size,
           m.size, head);
  }
}

}  // namespace hvmm::guest
