// The value types of the RESP store, shared by the store and the table layer.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace eloqkv::resp {

enum class ValueType : uint8_t { kNone = 0, kString = 1, kHash = 2 };
const char* ValueTypeName(ValueType t);

using HashFields = std::map<std::string, std::string, std::less<>>;
using FieldList = std::vector<std::pair<std::string, std::string>>;

}  // namespace eloqkv::resp
