#include "shardsim/io/json.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "shardsim/core/error.hpp"

namespace shardsim::io {

Json& Json::operator[](const std::string& key) {
    if (is_null()) v_ = Object{};
    SHARDSIM_ASSERT(is_object(), "JSON value is not an object");
    auto& o = std::get<Object>(v_);
    for (auto& [k, v] : o)
        if (k == key) return v;
    o.emplace_back(key, Json());
    return o.back().second;
}

const Json& Json::at(const std::string& key) const {
    SHARDSIM_ASSERT(is_object(), "JSON value is not an object");
    for (const auto& [k, v] : std::get<Object>(v_))
        if (k == key) return v;
    throw Error("JSON: no key '" + key + "'");
}

bool Json::contains(const std::string& key) const {
    if (!is_object()) return false;
    for (const auto& [k, v] : std::get<Object>(v_))
        if (k == key) return true;
    return false;
}

void Json::push_back(Json v) {
    if (is_null()) v_ = Array{};
    SHARDSIM_ASSERT(is_array(), "JSON value is not an array");
    std::get<Array>(v_).push_back(std::move(v));
}

std::size_t Json::size() const {
    if (is_array()) return std::get<Array>(v_).size();
    if (is_object()) return std::get<Object>(v_).size();
    return 0;
}

const Json& Json::operator[](std::size_t i) const {
    SHARDSIM_ASSERT(is_array(), "JSON value is not an array");
    return std::get<Array>(v_).at(i);
}

bool Json::as_bool() const {
    if (!is_bool()) throw Error("JSON: not a boolean");
    return std::get<bool>(v_);
}
double Json::as_number() const {
    if (std::holds_alternative<std::int64_t>(v_)) return static_cast<double>(std::get<std::int64_t>(v_));
    if (std::holds_alternative<double>(v_)) return std::get<double>(v_);
    throw Error("JSON: not a number");
}
std::int64_t Json::as_int() const {
    if (std::holds_alternative<std::int64_t>(v_)) return std::get<std::int64_t>(v_);
    if (std::holds_alternative<double>(v_)) return static_cast<std::int64_t>(std::get<double>(v_));
    throw Error("JSON: not a number");
}
const std::string& Json::as_string() const {
    if (!is_string()) throw Error("JSON: not a string");
    return std::get<std::string>(v_);
}
const Json::Array& Json::as_array() const {
    if (!is_array()) throw Error("JSON: not an array");
    return std::get<Array>(v_);
}
const Json::Object& Json::as_object() const {
    if (!is_object()) throw Error("JSON: not an object");
    return std::get<Object>(v_);
}

std::string json_escape(const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    out += buf;
                } else {
                    out += static_cast<char>(c);
                }
        }
    }
    return out + "\"";
}

void Json::dump_to(std::string& out, int indent, int depth) const {
    auto newline = [&](int d) {
        if (indent < 0) return;
        out += '\n';
        out.append(static_cast<std::size_t>(indent * d), ' ');
    };
    if (is_null()) {
        out += "null";
    } else if (is_bool()) {
        out += std::get<bool>(v_) ? "true" : "false";
    } else if (std::holds_alternative<std::int64_t>(v_)) {
        out += std::to_string(std::get<std::int64_t>(v_));
    } else if (std::holds_alternative<double>(v_)) {
        const double d = std::get<double>(v_);
        if (!std::isfinite(d)) {
            out += "null";
        } else {
            char buf[32];
            std::snprintf(buf, sizeof buf, "%.17g", d);
            out += buf;
        }
    } else if (is_string()) {
        out += json_escape(std::get<std::string>(v_));
    } else if (is_array()) {
        const auto& a = std::get<Array>(v_);
        out += '[';
        for (std::size_t i = 0; i < a.size(); ++i) {
            if (i) out += ',';
            newline(depth + 1);
            a[i].dump_to(out, indent, depth + 1);
        }
        if (!a.empty()) newline(depth);
        out += ']';
    } else {
        const auto& o = std::get<Object>(v_);
        out += '{';
        for (std::size_t i = 0; i < o.size(); ++i) {
            if (i) out += ',';
            newline(depth + 1);
            out += json_escape(o[i].first);
            out += indent < 0 ? ":" : ": ";
            o[i].second.dump_to(out, indent, depth + 1);
        }
        if (!o.empty()) newline(depth);
        out += '}';
    }
}

std::string Json::dump(int indent) const {
    std::string out;
    dump_to(out, indent, 0);
    return out;
}

namespace {
class Parser {
public:
    explicit Parser(const std::string& t) : t_(t) {}
    Json parse_all() {
        Json v = value();
        skip();
        if (i_ != t_.size()) fail("trailing characters");
        return v;
    }

private:
    [[noreturn]] void fail(const std::string& why) {
        throw Error("JSON parse error at offset " + std::to_string(i_) + ": " + why);
    }
    void skip() {
        while (i_ < t_.size() && (t_[i_] == ' ' || t_[i_] == '\n' || t_[i_] == '\t' || t_[i_] == '\r')) ++i_;
    }
    bool take(char c) {
        skip();
        if (i_ < t_.size() && t_[i_] == c) {
            ++i_;
            return true;
        }
        return false;
    }
    void expect(char c) {
        if (!take(c)) fail(std::string("expected '") + c + "'");
    }
    Json value() {
        skip();
        if (i_ >= t_.size()) fail("unexpected end");
        const char c = t_[i_];
        if (c == '{') return object();
        if (c == '[') return array();
        if (c == '"') return Json(string());
        if (t_.compare(i_, 4, "true") == 0) return i_ += 4, Json(true);
        if (t_.compare(i_, 5, "false") == 0) return i_ += 5, Json(false);
        if (t_.compare(i_, 4, "null") == 0) return i_ += 4, Json();
        return number();
    }
    Json object() {
        expect('{');
        Json o = Json::object();
        if (take('}')) return o;
        do {
            skip();
            std::string k = string();
            expect(':');
            o[k] = value();
        } while (take(','));
        expect('}');
        return o;
    }
    Json array() {
        expect('[');
        Json a = Json::array();
        if (take(']')) return a;
        do a.push_back(value());
        while (take(','));
        expect(']');
        return a;
    }
    std::string string() {
        if (i_ >= t_.size() || t_[i_] != '"') fail("expected string");
        ++i_;
        std::string s;
        while (i_ < t_.size() && t_[i_] != '"') {
            char c = t_[i_++];
            if (c == '\\') {
                if (i_ >= t_.size()) fail("bad escape");
                const char e = t_[i_++];
                switch (e) {
                    case 'n': s += '\n'; break;
                    case 't': s += '\t'; break;
                    case 'r': s += '\r'; break;
                    case 'b': s += '\b'; break;
                    case 'f': s += '\f'; break;
                    case 'u': {
                        if (i_ + 4 > t_.size()) fail("bad \\u escape");
                        const unsigned code = static_cast<unsigned>(std::strtoul(t_.substr(i_, 4).c_str(), nullptr, 16));
                        i_ += 4;
                        if (code < 0x80) {
                            s += static_cast<char>(code);
                        } else if (code < 0x800) {
                            s += static_cast<char>(0xC0 | (code >> 6));
                            s += static_cast<char>(0x80 | (code & 0x3F));
                        } else {
                            s += static_cast<char>(0xE0 | (code >> 12));
                            s += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
                            s += static_cast<char>(0x80 | (code & 0x3F));
                        }
                        break;
                    }
                    default: s += e;
                }
            } else {
                s += c;
            }
        }
        if (i_ >= t_.size()) fail("unterminated string");
        ++i_;
        return s;
    }
    Json number() {
        const std::size_t start = i_;
        bool is_float = false;
        while (i_ < t_.size() && (std::isdigit(static_cast<unsigned char>(t_[i_])) || t_[i_] == '-' || t_[i_] == '+' ||
                                  t_[i_] == '.' || t_[i_] == 'e' || t_[i_] == 'E')) {
            if (t_[i_] == '.' || t_[i_] == 'e' || t_[i_] == 'E') is_float = true;
            ++i_;
        }
        if (start == i_) fail("unexpected character");
        const std::string n = t_.substr(start, i_ - start);
        if (!is_float) return Json(static_cast<long long>(std::strtoll(n.c_str(), nullptr, 10)));
        return Json(std::strtod(n.c_str(), nullptr));
    }
    const std::string& t_;
    std::size_t i_ = 0;
};
}  // namespace

Json Json::parse(const std::string& text) { return Parser(text).parse_all(); }

}  // namespace shardsim::io
