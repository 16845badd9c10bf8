// The models gpen knows by name: where each is published, how big it is and, where the publisher
// gives one, its SHA-256. `gpen models list` prints this table; resolve_model() (model_cache.h)
// turns a name into a file in the local cache, downloading it when missing.
//
// Hashes: the GPEN authors publish URLs but no checksums. For those entries `sha256` is empty and
// the hash is recorded at first download (trust on first use) and checked by `gpen models verify`
// from then on; see docs/MODELS.md. Where we know the exact bytes of a published file (the
// RetinaFace MobileNet-0.25 release), the registry carries its size and hash and every download is
// checked against them.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace gpen {

enum class ModelKind { Gpen, Detector, FaceParser, SuperResolution };
const char* model_kind_name(ModelKind k);  // "gpen", "detector", "parser", "sr"

enum class ModelFormat { Pth, Onnx };

struct ModelEntry {
  std::string name;                  // canonical name, e.g. "GPEN-BFR-512"
  std::vector<std::string> aliases;  // other accepted names (matched case-insensitively)
  ModelKind kind = ModelKind::Gpen;
  ModelFormat format = ModelFormat::Pth;
  std::string file_name;             // name in the cache, e.g. "GPEN-BFR-512.pth"
  std::vector<std::string> urls;     // the official URL first, then mirrors, tried in order
  int64_t size = 0;                  // bytes; 0 when not published (recorded at first download)
  std::string sha256;                // lower-case hex; empty when not published
  std::string source;                // who publishes the URL (and the hash, when there is one)
  std::string description;
};

// Every registered model, in display order.
const std::vector<ModelEntry>& model_registry();

// The entry whose name or alias equals `name` ignoring case (and a trailing ".pth"/".onnx");
// nullptr when none does.
const ModelEntry* find_model(const std::string& name);

// Whether this build can load the entry's format: .pth always; ONNX only when the ONNX importer
// (weights/onnx.h) is compiled in.
bool model_format_supported(const ModelEntry& e);

}  // namespace gpen
