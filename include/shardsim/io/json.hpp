#pragma once
// A small JSON value with ordered object keys: enough to write every --json output (and to read
// it back in tests) without a dependency.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace shardsim::io {

class Json {
public:
    using Array = std::vector<Json>;
    using Object = std::vector<std::pair<std::string, Json>>;

    Json() = default;  // null
    Json(std::nullptr_t) {}
    Json(bool b) : v_(b) {}
    Json(int i) : v_(static_cast<std::int64_t>(i)) {}
    Json(long i) : v_(static_cast<std::int64_t>(i)) {}
    Json(long long i) : v_(static_cast<std::int64_t>(i)) {}
    Json(unsigned long i) : v_(static_cast<std::int64_t>(i)) {}
    Json(unsigned long long i) : v_(static_cast<std::int64_t>(i)) {}
    Json(double d) : v_(d) {}
    Json(const char* s) : v_(std::string(s)) {}
    Json(std::string s) : v_(std::move(s)) {}
    Json(Array a) : v_(std::move(a)) {}
    Json(Object o) : v_(std::move(o)) {}

    static Json array() { return Json(Array{}); }
    static Json object() { return Json(Object{}); }

    // Objects: set (replacing an existing key) and look up.
    Json& operator[](const std::string& key);
    const Json& at(const std::string& key) const;
    bool contains(const std::string& key) const;
    // Arrays
    void push_back(Json v);
    std::size_t size() const;
    const Json& operator[](std::size_t i) const;

    bool is_null() const { return std::holds_alternative<std::monostate>(v_); }
    bool is_bool() const { return std::holds_alternative<bool>(v_); }
    bool is_number() const { return std::holds_alternative<std::int64_t>(v_) || std::holds_alternative<double>(v_); }
    bool is_string() const { return std::holds_alternative<std::string>(v_); }
    bool is_array() const { return std::holds_alternative<Array>(v_); }
    bool is_object() const { return std::holds_alternative<Object>(v_); }

    bool as_bool() const;
    double as_number() const;
    std::int64_t as_int() const;
    const std::string& as_string() const;
    const Array& as_array() const;
    const Object& as_object() const;

    // indent < 0: one line.
    std::string dump(int indent = 2) const;
    static Json parse(const std::string& text);  // throws shardsim::Error on malformed input

private:
    void dump_to(std::string& out, int indent, int depth) const;
    std::variant<std::monostate, bool, std::int64_t, double, std::string, Array, Object> v_;
};

std::string json_escape(const std::string& s);

}  // namespace shardsim::io
