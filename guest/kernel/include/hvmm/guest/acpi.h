// Minimal ACPI: the processors listed in the MADT.
#pragma once

#include <cstdint>

#include "hvmm/guest/boot_info.h"

namespace hvmm::guest {

// Fill `apic_ids` with the enabled processors of the MADT (RSDP from start_info, or found
// in the BIOS area when the memory map describes it). Returns how many, 0 when there are no ACPI
// tables.
unsigned acpi_find_cpus(const BootInfo& info, uint32_t* apic_ids, unsigned max);

}  // namespace hvmm::guest
