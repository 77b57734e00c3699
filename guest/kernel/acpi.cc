// Just enough ACPI to count CPUs: find the RSDP (from start_info or by one `repne scasq`
// over the BIOS area), walk the RSDT/XSDT to the MADT and collect enabled local APIC ids.
#include "hvmm/guest/acpi.h"

#include "hvmm/guest/memory.h"
#include "hvmm/guest/runtime.h"

namespace hvmm::guest {
namespace {

struct __attribute__((packed)) Rsdp {
  char signature[8];
  uint8_t checksum;
  char oem[6];
  uint8_t revision;
  uint32_t rsdt;
  uint32_t length;
  uint64_t xsdt;
};

struct __attribute__((packed)) SdtHeader {
  char signature[4];
  uint32_t length;
  uint8_t revision;
  uint8_t checksum;
  char oem[6];
  char oem_table[8];
  uint32_t oem_revision;
  uint32_t creator;
  uint32_t creator_revision;
};

// Direct-map pointer to physical memory.
template <typename T>
const T* phys(uint64_t pa) {
  return reinterpret_cast<const T*>(pa + kDirectMapBase);
}

// Find "RSD PTR " on a 16-byte boundary in [0xf0000, 0x100000) with one string instruction
// (the signature is 8 bytes, so a qword scan on 8-byte steps finds it).
uint64_t scan_rsdp() {
  constexpr uint64_t kSignature = 0x2052545020445352ull;  // "RSD PTR "
  const uint64_t* p = phys<uint64_t>(0xf0000);
  uint64_t count = (0x100000 - 0xf0000) / 8;
  uint64_t sig = kSignature;
  asm volatile("cld; repne scasq" : "+D"(p), "+c"(count) : "a"(sig) : "memory", "cc");
  if (p[-1] != kSignature)
    return 0;
  return reinterpret_cast<uint64_t>(p - 1) - kDirectMapBase;
}

// Collect enabled processors of a MADT (types 0: local APIC, 9: local x2APIC).
unsigned parse_madt(const SdtHeader* madt, uint32_t* ids, unsigned max) {
  const auto* p = reinterpret_cast<const uint8_t*>(madt) + sizeof(SdtHeader) + 8;
  const auto* end = reinterpret_cast<const uint8_t*>(madt) + madt->length;
  unsigned n = 0;
  while (p + 2 <= end && p[1] >= 2 && n < max) {
    if (p[0] == 0 && (p[4] & 1) != 0)
      ids[n++] = p[3];
    if (p[0] == 9 && (p[8] & 1) != 0)
      memcpy(&ids[n++], p + 4, 4);
    p += p[1];
  }
  return n;
}

// True if the loader's memory map describes the BIOS area (so scanning it reads memory,
// not unbacked addresses that would each exit to the VMM).
bool bios_area_described(const BootInfo& info) {
  for (unsigned i = 0; i < info.memmap_entries; ++i) {
    const HvmMemmapEntry& e = info.memmap[i];
    if (e.addr <= 0xe0000 && e.addr + e.size >= 0x100000 && e.type == kMemmapRam)
      return true;
    if (e.addr <= 0xf0000 && e.addr + e.size >= 0x100000 && e.type != kMemmapRam)
      return true;
  }
  return false;
}

}  // namespace

// Walk RSDP → XSDT/RSDT → "APIC".
unsigned acpi_find_cpus(const BootInfo& info, uint32_t* apic_ids, unsigned max) {
  uint64_t rsdp_paddr = info.rsdp_paddr;
  if (rsdp_paddr == 0 && bios_area_described(info))
    rsdp_paddr = scan_rsdp();
  if (rsdp_paddr == 0)
    return 0;
  const Rsdp* rsdp = phys<Rsdp>(rsdp_paddr);
  if (memcmp(rsdp->signature, "RSD PTR ", 8) != 0)
    return 0;
  bool xsdt = rsdp->revision >= 2 && rsdp->xsdt != 0;
  const SdtHeader* root = phys<SdtHeader>(xsdt ? rsdp->xsdt : rsdp->rsdt);
  unsigned entry_size = xsdt ? 8 : 4;
  unsigned entries = (root->length - sizeof(SdtHeader)) / entry_size;
  const auto* table = reinterpret_cast<const uint8_t*>(root) + sizeof(SdtHeader);
  for (unsigned i = 0; i < entries; ++i) {
    uint64_t pa = 0;
    memcpy(&pa, table + i * entry_size, entry_size);
    const SdtHeader* h = phys<SdtHeader>(pa);
    if (memcmp(h->signature, "APIC", 4) == 0)
      return parse_madt(h, apic_ids, max);
  }
  return 0;
}

}  // namespace hvmm::guest
