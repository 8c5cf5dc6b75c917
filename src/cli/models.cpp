// shardsim models: the catalogue, with parameter counts computed tensor by tensor.
#include <cmath>
#include <iostream>

#include "shardsim/cli/options.hpp"
#include "shardsim/core/format.hpp"
#include "shardsim/io/json.hpp"
#include "shardsim/model/units.hpp"

namespace shardsim::cli {

namespace {

io::Json stack_json(const model::StackSpec& s) {
    io::Json j = io::Json::object();
    j["layers"] = s.layers;
    j["hidden"] = s.hidden;
    j["heads"] = s.heads;
    j["kv_heads"] = s.kv_heads;
    j["head_dim"] = s.head_dim;
    j["ffn"] = s.ffn;
    if (s.cross_attention_layers) j["cross_attention_layers"] = s.cross_attention_layers;
    return j;
}

io::Json model_json(const model::ModelSpec& m, bool with_units) {
    const auto units = model::build_units(m);
    io::Json j = io::Json::object();
    j["name"] = m.name;
    j["family"] = m.family();
    j["arch"] = model::arch_name(m.arch);
    j["vocab"] = m.vocab;
    if (m.encoder_decoder()) j["encoder"] = stack_json(m.encoder);
    j["decoder"] = stack_json(m.decoder);
    j["ffn_kind"] = model::ffn_kind_name(m.ffn_kind);
    j["norm"] = model::norm_kind_name(m.norm);
    j["position"] = model::position_kind_name(m.position);
    j["tied_embeddings"] = m.tied_embeddings;
    j["attention_bias"] = m.attention_bias;
    j["mlp_bias"] = m.mlp_bias;
    j["attention_dropout"] = m.attention_dropout;
    j["hidden_dropout"] = m.hidden_dropout;
    j["sdpa"] = m.sdpa;                  // Hugging Face has an SDPA / FlashAttention-2 path
    j["softmax_fp32"] = m.softmax_fp32;  // eager softmax kept in fp32
    j["loss_fp32"] = m.loss_fp32;        // the loss upcasts the logits (T5: no)
    j["param_count"] = model::total_params(units).count();
    j["published_params"] = m.published_params;
    j["unit_count"] = static_cast<std::int64_t>(units.size());
    j["source"] = m.source;
    if (with_units) {
        io::Json ua = io::Json::array();
        for (const auto& u : units) {
            io::Json uj = io::Json::object();
            uj["name"] = u.name;
            uj["kind"] = model::unit_kind_name(u.kind);
            uj["params"] = u.params().count();
            io::Json ta = io::Json::array();
            for (const auto& t : u.tensors) {
                io::Json tj = io::Json::object();
                tj["name"] = t.name;
                io::Json shape = io::Json::array();
                for (auto d : t.shape) shape.push_back(d);
                tj["shape"] = shape;
                tj["trainable"] = t.trainable;
                ta.push_back(tj);
            }
            uj["tensors"] = ta;
            ua.push_back(uj);
        }
        j["units"] = ua;
    }
    return j;
}

std::string dims(const model::StackSpec& s) {
    std::string h = std::to_string(s.heads);
    if (s.kv_heads != s.heads) h += "/" + std::to_string(s.kv_heads);
    return std::to_string(s.layers) + "x" + std::to_string(s.hidden) + " h" + h + " ffn" + std::to_string(s.ffn);
}

}  // namespace

int cmd_models(const Args& args) {
    po::options_description desc("options");
    desc.add_options()("json", "print JSON")("units", po::value<std::string>(),
                                             "show the wrapping units of one model (catalogue name or .ini path)");
    auto vm = parse_options("models", "shardsim models [--json] [--units MODEL]", desc, args);
    if (!vm) return 0;
    const bool json = vm->count("json") != 0;

    if (vm->count("units")) {
        const auto m = model::load_model((*vm)["units"].as<std::string>(), ".", "--units");
        if (json) {
            std::cout << model_json(m, true).dump() << "\n";
            return 0;
        }
        const auto units = model::build_units(m);
        TextTable t({"unit", "kind", "tensors", "params"});
        for (const auto& u : units)
            t.add_row({u.name, model::unit_kind_name(u.kind), std::to_string(u.tensors.size()),
                       std::to_string(u.params().count())});
        std::cout << m.name << ": " << units.size() << " units, " << model::total_params(units).count()
                  << " parameters\n" << t.str();
        return 0;
    }

    const auto models = model::catalogue();
    if (json) {
        io::Json a = io::Json::array();
        for (const auto& m : models) a.push_back(model_json(m, false));
        io::Json root = io::Json::object();
        root["models"] = a;
        std::cout << root.dump() << "\n";
        return 0;
    }
    TextTable t({"model", "family", "arch", "encoder", "decoder", "ffn", "vocab", "tied", "norm", "position",
                 "params", "published", "diff"});
    for (const auto& m : models) {
        const auto n = model::total_params(model::build_units(m)).count();
        std::string diff = "-";
        if (m.published_params > 0)
            diff = format_fixed(100.0 * (static_cast<double>(n) - m.published_params) / m.published_params, 3) + "%";
        t.add_row({m.name, m.family(), model::arch_name(m.arch), m.encoder_decoder() ? dims(m.encoder) : "-",
                   dims(m.decoder), model::ffn_kind_name(m.ffn_kind), std::to_string(m.vocab),
                   m.tied_embeddings ? "yes" : "no", model::norm_kind_name(m.norm), model::position_kind_name(m.position),
                   format_count(n), m.published_params ? format_count(m.published_params) : "-", diff});
    }
    std::cout << t.str();
    return 0;
}

}  // namespace shardsim::cli
