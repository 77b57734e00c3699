// IpaSpace geometry (ARM ARM D8.2.7; Linux arch/arm64/include/asm/stage2_pgtable.h).
#include "hvmm/stage2/ipa_space.h"

#include "hvmm/stage2/descriptor.h"

namespace hvmm::stage2 {

// Up to 16 tables (4 extra address bits) may be concatenated at the initial lookup level,
// so the ordinary levels only need to resolve ipa_bits - 4 bits above the page offset.
Result<IpaSpace> IpaSpace::create(unsigned ipa_bits) {
  if (ipa_bits < kMinBits || ipa_bits > kMaxBits) {
    return make_error(ErrorCode::kInvalidArgument,
                      "IPA size of {} bits is not supported: it must be {} to {} bits", ipa_bits,
                      kMinBits, kMaxBits);
  }
  const unsigned levels = (ipa_bits - 4 - kPageShift + kBitsPerLevel - 1) / kBitsPerLevel;
  const unsigned root_level = levels - 1;
  const unsigned root_bits = ipa_bits - level_shift(root_level);
  const unsigned root_entries = 1u << root_bits;
  const unsigned root_tables =
      root_entries > kEntriesPerTable ? root_entries / kEntriesPerTable : 1;
  return IpaSpace(ipa_bits, root_level, root_tables, root_entries);
}

}  // namespace hvmm::stage2
