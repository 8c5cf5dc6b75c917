// shardsim calibrate: fit a topology's link latency and bandwidth (sim/calibrate.hpp) to a bench
// sweep, write the calibrated topology, and say how well it predicts the sweep.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <iostream>

#include "shardsim/bench/compute.hpp"
#include "shardsim/bench/model_ops.hpp"
#include "shardsim/cli/options.hpp"
#include "shardsim/cli/run_setup.hpp"
#include "shardsim/config/ini_edit.hpp"
#include "shardsim/comm/mpi.hpp"
#include "shardsim/config/topology.hpp"
#include "shardsim/core/stats.hpp"
#include "shardsim/core/version.hpp"
#include "shardsim/core/format.hpp"
#include "shardsim/device/backend.hpp"
#include "shardsim/device/device.hpp"
#include "shardsim/io/bench_file.hpp"
#include "shardsim/report/calibration.hpp"
#include "shardsim/model/scenario.hpp"
#include "shardsim/plan/plan.hpp"
#include "shardsim/sim/calibrate.hpp"
#include "shardsim/sim/cost.hpp"

namespace shardsim::cli {

namespace {

std::string significant(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    return buf;
}

// The level's keys with their fitted values (as the topology spells them: us, decimal GB/s). The
// achieved bus bandwidth is written as an efficiency of the datasheet bandwidth, unless it is
// above it (a CPU host's shared memory): then as the bandwidth, at efficiency 1.
std::vector<config::IniEdit> edits(const sim::Calibration& c, const config::TopologyConfig& t) {
    std::vector<config::IniEdit> out;
    for (const auto& f : c.levels) {
        if (!f.fitted) continue;
        const std::string section = sim::link_level_name(f.level);
        const bool intra = f.level == sim::LinkLevel::intra_node;
        const config::LinkSpec& was = intra ? t.intra : t.inter;
        const sim::LevelLinks& now = intra ? c.links.intra : c.links.inter;
        const std::string by = "fitted by shardsim calibrate (was ";
        out.push_back({section, "latency_us", significant(f.latency_s * 1e6), by + significant(was.latency_us) + ")"});
        if (now.bandwidth_Bps != was.bandwidth_gbps * 1e9)
            out.push_back({section, "bandwidth_gbps", significant(now.bandwidth_Bps / 1e9), by + significant(was.bandwidth_gbps) + ")"});
        out.push_back({section, "efficiency", significant(now.efficiency), by + significant(was.efficiency) + "; bus bandwidth " +
                                                                               significant(f.busbw_Bps / 1e9) + " GB/s)"});
        if (f.reduce_fitted)
            out.push_back({"gpu", "reduce_gbps", significant(f.reduce_Bps / 1e9),
                           by + significant(t.gpu.reduce_gbps) + "; 0: reductions cost nothing beyond the transfer)"});
        if (f.cache_fitted) {
            out.push_back({section, "cache_mib", significant(f.cache_bytes / static_cast<double>(kMiB)),
                           by + significant(was.cache_mib) + "; the host's last-level cache or less, searched)"});
            out.push_back({section, "spill_slowdown", significant(f.spill_slowdown), by + significant(was.spill_slowdown) + ")"});
        }
        if (f.copy_fitted)
            out.push_back({section, "copy_gbps", significant(f.copy_Bps / 1e9), by + significant(was.copy_gbps) + "; 0: free)"});
    }
    return out;
}

std::vector<sim::Measurement> measurements(const bench::BenchRun& run) {
    std::vector<sim::Measurement> out;
    for (const auto& r : run.rows)
        out.push_back({r.kind, r.size_bytes, run.groups.at(static_cast<std::size_t>(r.group)).span, r.time_s, r.in_place});
    return out;
}

// A share of a peak as the topology holds it: at most 1; above it the peak itself was low.
std::string share(double v) { return significant(std::min(1.0, v)); }

// The [compute] keys (and the peaks or memory bandwidth where this device beats the datasheet)
// from what --compute measured. A CPU device computes every dtype in fp32 (its 16-bit GEMMs are
// fp32 GEMMs between staging passes, priced by compute.stage_gelems): every dtype gets the fp32
// peak, and its optimizer rate is the host's (the same kernel runs an offloaded step).
std::vector<config::IniEdit> compute_edits(const bench::ComputeMeasurement& m, const config::TopologyConfig& t) {
    std::vector<config::IniEdit> out;
    const bool cpu = m.stage_elements_per_s > 0 || m.optimizer_elements_per_s > 0 || m.accumulate_elements_per_s > 0;
    const double peak = t.gpu.peak_tflops(m.dtype) * 1e12;
    const std::string by = "measured by shardsim calibrate --compute (was ";
    const double peak_used = std::max(peak, m.gemm_flops_per_s);
    const double efficiency = std::min(1.0, m.gemm_flops_per_s / peak_used);
    for (DType d : {DType::bf16, DType::fp16, DType::fp32})
        if (m.gemm_flops_per_s > peak || (cpu && d != m.dtype && t.gpu.peak_tflops(d) * 1e12 != peak_used))
            out.push_back({"gpu", std::string(dtype_name(d)) + "_tflops", significant(peak_used / 1e12),
                           by + significant(t.gpu.peak_tflops(d)) + (d == m.dtype ? ")" : "; a CPU computes " + std::string(dtype_name(d)) + " in fp32)")});
    out.push_back({"compute", "gemm_efficiency", share(efficiency), by + significant(t.compute.gemm_efficiency) + ")"});
    out.push_back({"compute", "attention_efficiency", share(m.attention_flops_per_s / peak_used),
                   by + significant(t.compute.attention_efficiency) + ")"});
    const double hbm = t.gpu.hbm_gbps * 1e9;
    if (m.memory_Bps > hbm) out.push_back({"gpu", "hbm_gbps", significant(m.memory_Bps / 1e9), by + significant(t.gpu.hbm_gbps) + ")"});
    out.push_back({"compute", "memory_efficiency", share(m.memory_Bps / std::max(hbm, m.memory_Bps)),
                   by + significant(t.compute.memory_efficiency) + ")"});
    out.push_back({"compute", "launch_us", significant(m.launch_s * 1e6), by + significant(t.compute.launch_us) + ")"});
    if (m.stage_elements_per_s > 0)
        out.push_back({"compute", "stage_gelems", significant(m.stage_elements_per_s / 1e9), by + significant(t.compute.stage_gelems) + ")"});
    if (m.accumulate_elements_per_s > 0)
        out.push_back({"compute", "accumulate_gelems", significant(m.accumulate_elements_per_s / 1e9),
                       by + significant(t.compute.accumulate_gelems) + ")"});
    if (m.accumulate_fp32_elements_per_s > 0)
        out.push_back({"compute", "accumulate_fp32_gelems", significant(m.accumulate_fp32_elements_per_s / 1e9),
                       by + significant(t.compute.accumulate_fp32_gelems) + ")"});
    if (m.optimizer_elements_per_s > 0)
        out.push_back({"host", "cpu_optimizer_gelems", significant(m.optimizer_elements_per_s / 1e9),
                       by + significant(t.host.cpu_optimizer_gelems) + ")"});
    out.push_back({"compute", "source", "shardsim calibrate --compute on " + m.device + " (" + comm::host_name() + ", " +
                                            std::string(dtype_name(m.dtype)) + ")", ""});
    return out;
}

// [Note: a CPU's elementwise kernels] On a GPU, norms, activation functions, softmax, rotary and
// the loss stream their tensors at near HBM bandwidth; on a CPU core the executor's kernels are
// scalar loops (a dtype conversion per element, exp, tanh and sin/cos where the op needs them)
// that run far below the core's streaming bandwidth, and at a rate per byte that depends on the
// family's kernels (measured here: a GPT-2 block's tanh GELU and LayerNorm take ~2.7x as long per
// byte of activation traffic as a Llama block's SwiGLU, RMSNorm and rotary). So on a CPU the
// share of hbm_gbps they achieve (compute.elementwise_efficiency) is fitted on the executor's own
// forward and backward ops: of the model the user trains (`--model`), or by default of Llama-7B
// and GPT-2 large pooled, each at the calibration size below (the family's architecture, kernels
// and positions kept; 2 blocks of width 384, 192 tokens, bf16, eager attention), with their GEMMs
// priced at the rates just measured, against the activation traffic the plan says they move. The
// size is never a job's own, so a job validated afterwards is a prediction.
model::ModelSpec calibration_size(model::ModelSpec m) {
    auto scale = [](model::StackSpec& s) {
        if (s.layers == 0) return;
        const double ffn_ratio = static_cast<double>(s.ffn) / static_cast<double>(std::max<std::int64_t>(1, s.hidden));
        const double rotary = s.rotary_dim > 0 ? static_cast<double>(s.rotary_dim) / static_cast<double>(std::max<std::int64_t>(1, s.head_dim)) : 0;
        const std::int64_t group = std::max<std::int64_t>(1, s.heads / std::max<std::int64_t>(1, s.kv_heads));
        s.layers = 2;
        s.heads = 6;
        s.head_dim = 64;
        s.hidden = 384;
        s.kv_heads = s.heads % group == 0 ? s.heads / group : s.heads;
        s.ffn = std::max<std::int64_t>(1, static_cast<std::int64_t>(std::lround(384 * ffn_ratio)));
        s.rotary_dim = rotary > 0 ? std::max<std::int64_t>(2, 2 * std::lround(32 * rotary)) : 0;
        s.cross_attention_layers = std::min<std::int64_t>(s.cross_attention_layers, 2);
    };
    scale(m.encoder);
    scale(m.decoder);
    m.vocab = 1024;
    m.max_positions = std::max<std::int64_t>(m.max_positions, 512);
    m.published_params = 0;
    m.name = "calibration-" + m.name;
    return m;
}

// The achieved share of hbm_gbps of a CPU's elementwise work, with the GEMMs priced by the
// topology `text` (the rates just measured). Each op timed goes to `samples`.
struct ModelFit {
    double elementwise_share = 1;
    double time_cv = 0;  // the spread of the ops of 1 ms and more ([Note: waiting for the last rank])
};

ModelFit fit_model_ops(device::Device& dev, const std::string& text, const std::vector<std::string>& models,
                       std::vector<bench::ComputeSample>& samples) {
    config::TopologyConfig topo = config::load_topology_text("<calibrated topology>", text, {});
    topo.gpus_per_node = 1;
    double residual = 0, traffic = 0;
    std::vector<double> deviations;  // time / median - 1 of every repetition of every op of 1 ms and more
    for (const auto& ref : models) {
        model::ModelSpec spec = calibration_size(model::load_model(ref, "", "--model"));
        const std::string name = spec.name;
        double model_residual = 0, model_traffic = 0;
        const std::string job_text = "[job]\nmodel = " + name + "\ntopology = " + topo.name +
                                     "\nseed = 11\n[parallel]\nstrategy = ddp\nworld_size = 1\n[precision]\nparams = bf16\n"
                                     "master_weights = true\n[optimizer]\nname = adamw\n[batch]\nmicro_batch = 1\nseq_len = 192\n" +
                                     std::string(spec.encoder_decoder() ? "decoder_seq_len = 128\n" : "") +
                                     "[memory]\nattention = eager\nactivation_checkpointing = false\n";
        config::JobConfig job = config::load_job_text("<" + name + " job>", job_text, "", {});
        const auto plan = plan::ShardingPlan::build(model::make_scenario(std::move(job), topo, std::move(spec)));
        const plan::Schedule schedule = plan::build_schedule(*plan);
        const sim::ComputeModel compute = sim::ComputeModel::from(plan->scenario().topology, plan->precision().params);
        for (const auto& t : bench::time_compute_ops(dev, *plan, schedule, 7)) {
            if (t.seconds >= 1e-3)
                for (double d : t.deviations) deviations.push_back(d);
            const plan::Op& op = schedule.ops.at(static_cast<std::size_t>(t.op));
            model_residual += t.seconds - compute.op_time(op.work, 0);
            model_traffic += sim::traffic_bytes(op);
            samples.push_back({name + " " + plan::op_kind_name(op.kind) + " " + plan->units().at(static_cast<std::size_t>(op.unit)).name,
                               t.seconds, op.work.flops(), 0});
        }
        samples.push_back({name + " elementwise (beyond the GEMMs)", model_residual, 0, model_traffic});
        residual += model_residual;
        traffic += model_traffic;
    }
    const double hbm = topo.gpu.hbm_gbps * 1e9;
    ModelFit fit;
    fit.elementwise_share = residual > 0 && hbm > 0 ? traffic / residual / hbm : 1.0;
    // The standard deviation of all of them together, tails included: a rank the OS interrupted
    // for a moment is exactly what its peers wait for. Estimates that resist one disturbance of
    // the host during calibration were tried on the demo (ten runs each) and all predicted the
    // ranks' waits too short: clipping the deviations at 5 normal-consistent scales put
    // communication at a median +9% of the prediction, at 10 scales +13%, leaving out the op
    // with the largest squares +14%, against -5% for the plain figure; the tails are most of
    // the wait. So a calibration a disturbance hit (a spread of 18-26% instead of 1-7%) is
    // visible in what it writes, and is for the user to run again.
    double sq = 0;
    for (double d : deviations) sq += d * d;
    if (deviations.size() > 1) fit.time_cv = std::sqrt(sq / static_cast<double>(deviations.size() - 1));
    return fit;
}

// --compute: measure this device and write the compute figures into the topology.
// [Note: calibrating with the job's ranks] A core measured alone is not a core beside others:
// ranks training at once share the memory bandwidth, the caches and the host's noise (on this
// project's 2-core VM, the spread of op times that makes ranks wait for each other was 2-4% for
// one process alone and several times that with two ranks running). So `mpirun -np N shardsim
// calibrate --compute` measures on every rank at once, each on its own core as in training, and
// writes the median over ranks of each rate and the root mean square of their spreads (their
// deviations pooled); without mpirun it is one rank. The op table it prints is rank 0's.
constexpr int kFigures = 11;
std::array<double, kFigures> figures(const bench::ComputeMeasurement& m, const ModelFit& fit) {
    return {m.gemm_flops_per_s, m.attention_flops_per_s, m.memory_Bps, m.launch_s, m.stage_elements_per_s, m.optimizer_elements_per_s,
            m.accumulate_elements_per_s, m.accumulate_fp32_elements_per_s, fit.elementwise_share, fit.time_cv * fit.time_cv, 0.0};
}
void combine(bench::ComputeMeasurement& m, ModelFit& fit, int rank, int size) {
    if (size <= 1) return;
    const auto mine = figures(m, fit);
    std::vector<double> all(static_cast<std::size_t>(kFigures * size));
    SHARDSIM_MPI_CHECK(MPI_Gather(mine.data(), kFigures, MPI_DOUBLE, all.data(), kFigures, MPI_DOUBLE, 0, MPI_COMM_WORLD));
    if (rank != 0) return;
    std::array<double, kFigures> out{};
    for (int f = 0; f < kFigures; ++f) {
        std::vector<double> v;
        for (int r = 0; r < size; ++r) v.push_back(all[static_cast<std::size_t>(r * kFigures + f)]);
        double mean = 0;
        for (double x : v) mean += x / static_cast<double>(size);
        out[static_cast<std::size_t>(f)] = f == 9 ? mean : median(v);
    }
    m.gemm_flops_per_s = out[0], m.attention_flops_per_s = out[1], m.memory_Bps = out[2], m.launch_s = out[3];
    m.stage_elements_per_s = out[4], m.optimizer_elements_per_s = out[5], m.accumulate_elements_per_s = out[6];
    m.accumulate_fp32_elements_per_s = out[7], fit.elementwise_share = out[8], fit.time_cv = std::sqrt(out[9]);
}

void write_compute(const config::TopologyConfig& topo, const std::string& out, const bench::ComputeMeasurement& m, const ModelFit& fit,
                   bool gpu, const std::vector<std::string>& models, int ranks, bool json) {
    auto changes = compute_edits(m, topo);
    if (!gpu) {
        changes.push_back({"compute", "time_cv", significant(std::min(1.0, fit.time_cv)),
                           "measured by shardsim calibrate --compute: the spread of those ops' times over 7 runs each on " +
                               std::to_string(ranks) + " rank(s) at once (was " + significant(topo.compute.time_cv) + ")"});
        changes.push_back({"compute", "elementwise_efficiency", share(fit.elementwise_share),
                           "fitted by shardsim calibrate --compute on the executor's forward and backward ops of " + join(models, " and ") +
                               " at calibration size (was " + significant(topo.compute.elementwise_efficiency) + ")"});
    }
    std::string preamble = "# Compute calibrated by shardsim " + version() + ": shardsim calibrate --compute --topology " + topo.name +
                           " on " + m.device + " (" + comm::host_name() + "), " + std::string(dtype_name(m.dtype)) + ", " +
                           std::to_string(ranks) + " rank(s) at once (the table: rank 0's):\n";
    TextTable table({"measured", "time", "rate"});
    for (const auto& s : m.samples)
        table.add_row({s.what, format_seconds(s.seconds),
                       s.flops > 0   ? format_fixed(s.flops / s.seconds / 1e9, 1) + " GFLOP/s"
                       : s.bytes > 0 ? format_fixed(s.bytes / s.seconds / 1e9, 2) + " GB/s"
                                     : "-"});
    for (const auto& line : split(table.str(), '\n'))
        if (!line.empty()) preamble += "#   " + line + "\n";
    const std::string text = config::edit_ini_text(topo.source, changes, preamble);
    config::load_topology_text(out, text, {});  // what is written must load
    write_text_file(out, text);
    if (json) {
        io::Json j = io::Json::object();
        j["device"] = m.device;
        j["gemm_flops_per_s"] = m.gemm_flops_per_s;
        j["stage_elements_per_s"] = m.stage_elements_per_s;          // CPU only, else 0
        j["optimizer_elements_per_s"] = m.optimizer_elements_per_s;  // CPU only, else 0
        j["accumulate_elements_per_s"] = m.accumulate_elements_per_s;            // CPU only, else 0
        j["accumulate_fp32_elements_per_s"] = m.accumulate_fp32_elements_per_s;  // CPU only, else 0
        j["attention_flops_per_s"] = m.attention_flops_per_s;
        j["memory_Bps"] = m.memory_Bps;
        j["launch_s"] = m.launch_s;
        for (const auto& c : changes)
            if (c.key == "elementwise_efficiency" || c.key == "time_cv") j[c.key] = std::stod(c.value);  // CPU only
        j["out"] = out;
        std::cout << j.dump() << "\n";
    } else if (out != "-") {
        std::cout << "shardsim calibrate --compute: " << m.device << ", " << dtype_name(m.dtype) << "\n" << table.str() << "\n";
        for (const auto& c : changes) std::cout << "  " << c.section << "." << c.key << " = " << c.value << "\n";
        std::cout << "\nwrote " << out << "\n";
    }
}

// --compute: measure this device and write the compute figures into the topology. Under mpirun
// every rank measures at once ([Note: calibrating with the job's ranks]) and rank 0 writes;
// without a launcher it is one process, and MPI is not started.
int calibrate_compute(const std::string& topology, const std::string& out, const std::string& device_name, const std::string& model,
                      bool json) {
    const config::TopologyConfig topo = config::load_topology(topology, "", "--topology", {});
    std::string why;
    const bool gpu = device_name == "cuda" || (device_name == "auto" && device::cuda_available(&why));
    if (device_name == "cuda" && !device::cuda_available(&why)) throw InputError("--device: bad value 'cuda': " + why + " (allowed: cpu)");
    const std::vector<std::string> models = model.empty() ? std::vector<std::string>{"llama-7b", "gpt2-large"} : std::vector<std::string>{model};
    const auto measure = [&](int rank, int size) {
        std::unique_ptr<device::Device> dev =
            gpu ? device::make_cuda_device(size > 1 ? device::bind_local_gpu(MPI_COMM_WORLD).device : 0) : device::make_cpu_device(1);
        // A GPU in the bf16 of training. The CPU device computes every dtype in fp32 and widens 16-bit
        // operands first (docs/compute.md): its fp32 rates, then the staging of bf16 operands and the
        // optimizer step, which on a CPU are compute of their own.
        bench::ComputeMeasurement m = bench::measure_compute(*dev, gpu ? DType::bf16 : DType::fp32, gpu ? 8192 : 1024);
        ModelFit fit;
        if (!gpu) {
            m.stage_elements_per_s = bench::measure_stage(*dev, DType::bf16, m.samples);
            m.optimizer_elements_per_s = bench::measure_optimizer(*dev, m.samples);
            m.accumulate_elements_per_s = bench::measure_accumulate(*dev, DType::bf16, m.samples);
            m.accumulate_fp32_elements_per_s = bench::measure_accumulate(*dev, DType::fp32, m.samples);
            // The elementwise share, with the GEMMs priced as this rank measured them ([Note: a CPU's elementwise kernels]).
            fit = fit_model_ops(*dev, config::edit_ini_text(topo.source, compute_edits(m, topo), ""), models, m.samples);
        }
        combine(m, fit, rank, size);
        if (rank != 0) return 0;
        write_compute(topo, out, m, fit, gpu, models, size, json);
        return 0;
    };
    // One process alone needs no MPI.
    return launched_by_mpi() ? run_mpi_command("calibrate", measure) : measure(0, 1);
}


}  // namespace

int cmd_calibrate(const Args& args) {
    std::string bench_path, topology, out, min_text = "1", max_text = "4G";
    bool json = false, compute = false;
    std::string device_name = "auto", model;
    po::options_description desc("options");
    desc.add_options()
        ("bench", po::value<std::string>(&bench_path), "the HDF5 file of shardsim bench --out")
        ("topology", po::value<std::string>(&topology), "the topology to calibrate (shipped name or .ini path)")
        ("out", po::value<std::string>(&out), "write the calibrated topology here ('-': stdout)")
        ("min-bytes", po::value<std::string>(&min_text)->default_value(min_text),
         "fit only sizes from this one (K, M, G suffixes), e.g. 1M for the sizes training moves")
        ("max-bytes", po::value<std::string>(&max_text)->default_value(max_text), "fit only sizes up to this one")
        ("json", po::bool_switch(&json), "print the fit as JSON")
        ("compute", po::bool_switch(&compute),
         "measure this device's GEMM, attention, memory and launch rates instead (no bench file) and write them into [compute]")
        ("device", po::value<std::string>(&device_name)->default_value(device_name), "--compute: auto, cpu or cuda")
        ("model", po::value<std::string>(&model),
         "--compute on a CPU: fit the elementwise share on this model's family (catalogue name or .ini; default: Llama-7B's and "
         "GPT-2 large's pooled), at calibration size");
    po::positional_options_description pos;
    pos.add("bench", 1);
    const auto vm = parse_options("calibrate", "shardsim calibrate BENCH.h5 --topology T --out T-calibrated.ini [--min-bytes 1M] [--json]\n       shardsim calibrate --compute --topology T --out T-calibrated.ini [--device auto|cpu|cuda] [--model M]", desc,
                                  args, "", &pos);
    if (!vm) return 0;
    if (compute) {
        Problems p;
        if (topology.empty()) p.add("--topology: missing (allowed: a shipped topology name or a path to a .ini file)");
        if (out.empty()) p.add("--out: missing (allowed: a path for the calibrated topology, or - for stdout)");
        if (device_name != "auto" && device_name != "cpu" && device_name != "cuda")
            p.add("--device: bad value '" + device_name + "' (allowed: auto, cpu, cuda)");
        p.throw_if_any();
        if (!model.empty()) model::load_model(model, "", "--model");  // a bad --model fails before anything is measured
        return calibrate_compute(topology, out, device_name, model, json);
    }
    Problems p;
    if (bench_path.empty()) p.add("shardsim calibrate: missing the bench file (usage: shardsim calibrate BENCH.h5 --topology T --out FILE.ini)");
    if (topology.empty()) p.add("--topology: missing (allowed: a shipped topology name or a path to a .ini file)");
    if (out.empty()) p.add("--out: missing (allowed: a path for the calibrated topology, or - for stdout)");
    const auto lo = parse_byte_count(min_text), hi = parse_byte_count(max_text);
    if (!lo) p.add("--min-bytes: bad value '" + min_text + "' (allowed: " + kByteCountAllowed + ")");
    if (!hi) p.add("--max-bytes: bad value '" + max_text + "' (allowed: " + kByteCountAllowed + ")");
    if (lo && hi && *lo > *hi) p.add("--max-bytes: bad value '" + max_text + "': below --min-bytes " + min_text);
    p.throw_if_any();

    const bench::BenchRun run = io::read_bench_file(bench_path);
    const config::TopologyConfig topo = config::load_topology(topology, "", "--topology", {});
    const auto points = measurements(run);
    report::CalibrationInput in;
    in.bench_path = bench_path;
    in.topology_name = topo.name;
    in.bench = &run;
    in.points = points;
    in.before = sim::LinkModel::from(topo);
    std::vector<sim::Measurement> fitted;
    for (const auto& m : points)
        if (m.size_bytes >= *lo && m.size_bytes <= *hi) fitted.push_back(m);
    // The range the errors are stated over: the sizes actually used, not the option's bounds.
    in.min_bytes = fitted.empty() ? *lo : *hi;
    in.max_bytes = fitted.empty() ? *hi : *lo;
    for (const auto& m : fitted) {
        in.min_bytes = std::min(in.min_bytes, m.size_bytes);
        in.max_bytes = std::max(in.max_bytes, m.size_bytes);
    }
    in.fit = sim::calibrate_links(in.before, fitted);
    for (auto& f : in.fit.levels)
        if (f.fitted && f.level == sim::LinkLevel::inter_node && topo.inter.kind == config::LinkKind::none) {
            f.fitted = false;
            f.note = "topology " + topo.name + " has no network (inter_node.kind = none) to calibrate";
        }

    // The file as it will be written, read back: the model simulate will use, errors included.
    const auto changes = edits(in.fit, topo);
    const config::TopologyConfig written = config::load_topology_text(out, config::edit_ini_text(topo.source, changes, ""), {});
    in.after = sim::LinkModel::from(written);
    const report::CalibrationReport r = report::calibration_report(in);
    const std::string text = config::edit_ini_text(topo.source, changes, r.preamble);
    config::load_topology_text(out, text, {});  // the preamble is comments only: still the same file
    write_text_file(out, text);

    if (json) {
        io::Json j = r.json;
        j["out"] = out;
        std::cout << j.dump() << "\n";
    } else if (out != "-") {
        std::cout << r.text;
        if (run.ranks_per_node != topo.gpus_per_node && topo.nodes > 1)
            std::cout << "note: the sweep ran " << run.ranks_per_node << " ranks per node, topology " << topo.name << " has "
                      << topo.gpus_per_node << " GPUs per node\n";
        std::cout << "\nwrote " << out << " (use it with: shardsim simulate --set job.topology=" << out << ")\n";
    }
    return 0;
}

}  // namespace shardsim::cli
