#include "weights/model_registry.h"

#include <algorithm>
#include <cctype>

namespace gpen {
namespace {

// The GPEN authors' bucket, as linked from the yangxy/GPEN README (and its demo/download scripts).
const std::string kGpenBucket = "https://public-vigen-video.oss-cn-shanghai.aliyuncs.com/robin/models/";
const std::string kGpenSource = "yangxy/GPEN README (no checksum published)";
const std::string kFacefusionRelease = "https://github.com/facefusion/facefusion-assets/releases/download/models-3.0.0/";
const std::string kFacefusionHf = "https://huggingface.co/facefusion/models-3.0.0/resolve/main/";

ModelEntry gpen_pth(const std::string& name, std::vector<std::string> aliases, ModelKind kind,
                    const std::string& description) {
  ModelEntry e;
  e.name = name;
  e.aliases = std::move(aliases);
  e.kind = kind;
  e.file_name = name + ".pth";
  e.urls = {kGpenBucket + e.file_name};
  e.source = kGpenSource;
  e.description = description;
  return e;
}

ModelEntry facefusion_onnx(int size) {
  const std::string stem = "gpen_bfr_" + std::to_string(size);
  ModelEntry e;
  e.name = "GPEN-BFR-" + std::to_string(size) + "-onnx";
  e.aliases = {stem};
  e.format = ModelFormat::Onnx;
  e.file_name = stem + ".onnx";
  e.urls = {kFacefusionRelease + e.file_name, kFacefusionHf + e.file_name};
  e.source = "facefusion/facefusion-assets release models-3.0.0 (CRC32 .hash only, no SHA-256)";
  e.description = "GPEN-BFR-" + std::to_string(size) + " exported to ONNX by facefusion";
  return e;
}

ModelEntry retinaface_mobilenet() {
  ModelEntry e;
  e.name = "RetinaFace-MobileNet0.25";
  e.aliases = {"mobilenet0.25", "retinaface-mobilenet", "mobilenet0.25_Final", "retinaface_mobilenet0.25"};
  e.kind = ModelKind::Detector;
  e.file_name = "mobilenet0.25_Final.pth";
  // biubug6/Pytorch_Retinaface publishes this file on Google Drive only (no direct URL); facexlib
  // and CodeFormer re-publish it as GitHub release assets.
  e.urls = {"https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_mobilenet0.25_Final.pth",
            "https://github.com/sczhou/CodeFormer/releases/download/v0.1.0/detection_mobilenet0.25_Final.pth"};
  // Size and hash of the biubug6 release as distributed with this project's test data
  // (../shared/weights/retinaface_mobilenet0.25.pth); a mirror serving other bytes is rejected.
  e.size = 1789735;
  e.sha256 = "ed6fa7d45a5179f03cb5ce82c73b0c6711372968e53782e88395acee88d319e1";
  e.source = "biubug6/Pytorch_Retinaface mobilenet0.25_Final.pth (MIT); hash of the known release file";
  e.description = "RetinaFace face detector, MobileNet-0.25 body (fast)";
  return e;
}

std::vector<ModelEntry> make_registry() {
  std::vector<ModelEntry> r;
  r.push_back(gpen_pth("GPEN-BFR-256", {"gpen-256", "bfr-256"}, ModelKind::Gpen, "GPEN blind face restoration, 256 px"));
  r.push_back(gpen_pth("GPEN-BFR-512", {"gpen-512", "bfr-512"}, ModelKind::Gpen,
                       "GPEN blind face restoration, 512 px (the default of the reference pipeline)"));
  r.push_back(gpen_pth("GPEN-BFR-1024", {"gpen-1024", "bfr-1024"}, ModelKind::Gpen, "GPEN blind face restoration, 1024 px"));
  r.push_back(gpen_pth("GPEN-BFR-2048", {"gpen-2048", "bfr-2048"}, ModelKind::Gpen, "GPEN blind face restoration, 2048 px"));
  r.push_back(gpen_pth("GPEN-Colorization-1024", {"gpen-colorization", "colorization-1024"}, ModelKind::Gpen,
                       "GPEN face colorization, 1024 px"));
  r.push_back(gpen_pth("GPEN-Inpainting-1024", {"gpen-inpainting", "inpainting-1024"}, ModelKind::Gpen,
                       "GPEN face inpainting, 1024 px"));
  r.push_back(gpen_pth("RetinaFace-R50", {"retinaface-resnet50", "resnet50"}, ModelKind::Detector,
                       "RetinaFace face detector, ResNet-50 body (the reference pipeline's)"));
  r.push_back(retinaface_mobilenet());
  ModelEntry parsenet = gpen_pth("ParseNet-latest", {"parsenet"}, ModelKind::FaceParser, "ParseNet face parsing (paste-back masks)");
  r.push_back(parsenet);
  ModelEntry x2 = gpen_pth("realesrnet_x2", {"realesrnet-x2", "sr-x2"}, ModelKind::SuperResolution,
                           "RealESRNet x2 background super-resolution (GPEN's)");
  ModelEntry x4 = gpen_pth("realesrnet_x4", {"realesrnet-x4", "sr-x4"}, ModelKind::SuperResolution,
                           "RealESRNet x4 background super-resolution (GPEN's)");
  r.push_back(x2);
  r.push_back(x4);
  for (int size : {256, 512, 1024, 2048}) r.push_back(facefusion_onnx(size));
  return r;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return s;
}

// "GPEN-BFR-512.pth" and "gpen-bfr-512" name the same entry.
std::string strip_model_extension(const std::string& s) {
  for (const char* ext : {".pth", ".onnx"}) {
    const std::string e = ext;
    if (s.size() > e.size() && s.compare(s.size() - e.size(), e.size(), e) == 0) return s.substr(0, s.size() - e.size());
  }
  return s;
}

bool entry_matches(const ModelEntry& e, const std::string& wanted) {
  if (lower(e.name) == wanted || lower(strip_model_extension(e.file_name)) == wanted) return true;
  return std::any_of(e.aliases.begin(), e.aliases.end(), [&](const std::string& a) { return lower(a) == wanted; });
}

}  // namespace

const char* model_kind_name(ModelKind k) {
  switch (k) {
    case ModelKind::Gpen: return "gpen";
    case ModelKind::Detector: return "detector";
    case ModelKind::FaceParser: return "parser";
    case ModelKind::SuperResolution: return "sr";
  }
  return "?";
}

const std::vector<ModelEntry>& model_registry() {
  static const std::vector<ModelEntry> registry = make_registry();
  return registry;
}

const ModelEntry* find_model(const std::string& name) {
  const std::string wanted = lower(strip_model_extension(lower(name)));
  for (const ModelEntry& e : model_registry())
    if (entry_matches(e, wanted)) return &e;
  return nullptr;
}

bool model_format_supported(const ModelEntry& e) {
  if (e.format == ModelFormat::Pth) return true;
#if __has_include("weights/onnx.h")
  return true;
#else
  return false;
#endif
}

}  // namespace gpen
