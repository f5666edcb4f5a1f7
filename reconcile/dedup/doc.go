// Package dedup stores object streams as content-defined, deduplicated,
// individually sealed chunks in tar packs on Aegis destinations.
//
// A repository lives under one prefix of a destination (RepoPrefix: one
// repository per HOST/POLICY):
//
//	HOST/POLICY/_dedup/packs/XX/PACKID.tar   tar whose members are sealed chunks named by chunk ID
//	HOST/POLICY/_dedup/index/INDEXID.json    which chunks each pack holds, and where
//	HOST/POLICY/_dedup/prune/MARKID.json     packs a prune marked for deletion (two-phase)
//
// The concatenation of an object's chunks, in order, is byte for byte the raw
// stream the source wrote. Each chunk is sealed alone (compressed, then
// encrypted) so that `tar -x` of a pack gives chunk files and
// `age -d | zstd -d` of one gives its plaintext.
//
// Commit rule: packs, then indexes (Writer.Commit), then the caller's
// snapshot manifest listing each object's chunk IDs in order.
//
// docs/dedup.md gives the design, the formats and the recovery recipe.
package dedup
