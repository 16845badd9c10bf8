// The prepared convolutions of a model by module name, as its graph builder looks them up:
// weight [K][C/g][kh][kw] (with the BatchNorm folded in where the checkpoint has one, see
// batch_norm.h) and bias [K]. Shared by RetinaFace, ParseNet and RRDBNet.
#pragma once
#include <map>
#include <string>
#include <utility>

#include "core/error.h"
#include "core/tensor.h"

namespace gpen {

struct PreparedConv {
  Tensor w, b;
};

class ConvTable {
 public:
  explicit ConvTable(std::string model) : model_(std::move(model)) {}
  void put(const std::string& name, PreparedConv c) { convs_[name] = std::move(c); }
  // A missing name is a bug in the model's builder: an internal error naming the model.
  const PreparedConv& at(const std::string& name) const {
    auto it = convs_.find(name);
    if (it == convs_.end()) fail(model_, ": internal: no prepared conv '", name, "'");
    return it->second;
  }
  size_t size() const { return convs_.size(); }

 private:
  std::string model_;
  std::map<std::string, PreparedConv> convs_;
};

}  // namespace gpen
