"""Benchmark: sampling, GPT and VQGAN training steps, tokenizer throughput, memory, FLOP use.

    python scripts/bench.py --out bench.json

Prints one JSON object. Each figure is the median of --repeats runs after a warm-up; each
phase runs in its own process so its peak RSS is its own, under a time limit (--phase-timeout):
a phase that fails or runs out of time is reported with its error and the others still run.
Sampling is measured against a KV cache grown by concatenation as taming-transformers grows
it (scripts/concat_cache_sampler.py, same weights, same codes) and, at the small size, against
recomputing the whole sequence every step. The large size runs only on a GPU by default.
"""
import json
import multiprocessing as mp
import queue as queue_module
import resource
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from vqgan.cli import Alias, comma_list, config_parser, load_script_config  # noqa: E402

torch = None  # imported by main() and run_phase(), after argparse: --help must not wait for it


def import_torch() -> None:
    global torch
    import torch

SIZES = {"small": dict(vocab_size=512, grid_size=8, n_layer=4, n_embd=256, n_head=4, batch=16),
         "medium": dict(vocab_size=1024, grid_size=16, n_layer=8, n_embd=512, n_head=8, batch=8),
         "large": dict(vocab_size=16384, grid_size=16, n_layer=12, n_embd=768, n_head=12, batch=32)}


def timed(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def gpt_of(size: str, kind: str = "gpt"):
    from transformer.generator import build_model
    from transformer.model import GPTConfig

    spec = dict(SIZES[size])
    batch = spec.pop("batch")
    torch.manual_seed(0)
    config = GPTConfig(kind=kind, num_classes=10, **spec)
    model = build_model(config).to(device()).eval()
    with torch.no_grad():
        model.head.weight.normal_(0, 0.02)  # a zero head would make every step a tie
    return model, batch


def sampling(size: str, repeats: int) -> dict:
    """`generate` as it runs by default on this device (weights in `sampling_dtype`, a CUDA graph
    on CUDA) against the concatenating cache in fp32, as taming ships it; top-k 100, no guidance."""
    from concat_cache_sampler import concat_cache_generate
    from transformer import generate
    from transformer.sampling import sampling_dtype

    model, batch = gpt_of(size)
    labels = torch.arange(batch, device=device()) % 10
    tokens = batch * model.config.num_image_tokens
    seeded = lambda: torch.Generator(device()).manual_seed(0)  # noqa: E731
    concat = timed(lambda: concat_cache_generate(model, labels, top_k=100, generator=seeded()), repeats)
    result = {"concat_cache_s": concat}
    if size == "small":
        result["recompute_s"] = timed(lambda: generate(model, labels, top_k=100, use_cache=False,
                                                       generator=seeded()), repeats, warmup=0)
    dtype = sampling_dtype(device())
    fast = model.to(dtype)
    ours = timed(lambda: generate(fast, labels, top_k=100, generator=seeded()), repeats)
    result.update({"ours_s": ours, "ours_dtype": str(dtype).replace("torch.", ""), "tokens": tokens,
                   "ours_tokens_per_s": tokens / ours, "speedup_vs_concat_cache": concat / ours})
    if "recompute_s" in result:
        result["speedup_vs_recompute"] = result["recompute_s"] / ours
    return result


def maskgit_sampling(size: str, repeats: int, steps: int = 12) -> dict:
    """The two stage-2 samplers on the same batch and grid, same widths, random weights, both in
    `sampling_dtype`: the GPT's `generate` (one code per step, KV cache) against MaskGIT's
    `generate_masked` (`steps` passes over the whole grid); top-k 100, no guidance."""
    from transformer import generate
    from transformer.maskgit_sampling import generate_masked
    from transformer.sampling import sampling_dtype

    dtype = sampling_dtype(device())
    gpt, batch = gpt_of(size)
    maskgit, _ = gpt_of(size, kind="maskgit")
    gpt, maskgit = gpt.to(dtype), maskgit.to(dtype)
    labels = torch.arange(batch, device=device()) % 10
    seeded = lambda: torch.Generator(device()).manual_seed(0)  # noqa: E731
    autoregressive = timed(lambda: generate(gpt, labels, top_k=100, generator=seeded()), repeats)
    parallel = timed(lambda: generate_masked(maskgit, labels, steps=steps, top_k=100, generator=seeded()), repeats)
    return {"gpt_s": autoregressive, "maskgit_s": parallel, "maskgit_steps": steps, "batch": batch,
            "grid": f"{gpt.config.grid_size}x{gpt.config.grid_size}", "dtype": str(dtype).replace("torch.", ""),
            "maskgit_speedup": autoregressive / parallel}


def gpt_forward_flops(repeats: int) -> dict:
    """Achieved FLOP/s of the medium GPT's forward against a large fp32 matmul on this machine."""
    model, batch = gpt_of("medium")
    c = model.config
    codes = torch.randint(0, c.vocab_size, (batch, c.num_image_tokens), device=device())
    prefix = model.condition_tokens(torch.zeros(batch, dtype=torch.long, device=device()))
    length = c.num_image_tokens  # prefix + T - 1 positions
    matrices = sum(p.numel() for n, p in model.named_parameters() if p.dim() == 2 and not n.startswith("tok_emb"))
    attention = 2 * 2 * c.n_layer * length * length * c.n_embd / 2  # QK^T and AV, causal half
    flops = batch * (2 * matrices * length + attention)
    with torch.inference_mode():
        seconds = timed(lambda: model(prefix, codes), repeats)
    n = 4096
    a, b = torch.randn(n, n, device=device()), torch.randn(n, n, device=device())
    peak = 2 * n**3 / timed(lambda: a @ b, repeats)
    return {"gpt_forward_gflops": flops / seconds / 1e9, "matmul_peak_gflops": peak / 1e9,
            "flops_utilisation": flops / seconds / peak}


CONFIGS = {"vqgan": "configs/vqgan/emoji32.yaml", "gpt": "configs/transformer/emoji32.yaml", "vqgan_overrides": []}


def bench_tokenizer():
    """A tokenizer of the benchmarked architecture (random weights: speed does not depend on them)."""
    from vqgan import VQGAN
    from vqgan.config import load_config
    from vqgan.train_config import VQGANTrainConfig

    config = load_config(VQGANTrainConfig, CONFIGS["vqgan"], CONFIGS["vqgan_overrides"])
    return VQGAN(config.model).to(device()).eval(), config


def tokenizer_throughput(repeats: int) -> dict:
    tokenizer, config = bench_tokenizer()
    batch, side = config.data.batch_size, config.model.resolution
    x = torch.rand(batch, 3, side, side, device=device()) * 2 - 1
    codes = tokenizer.encode(x)
    encode = timed(lambda: tokenizer.encode(x), repeats)
    decode = timed(lambda: tokenizer.decode(codes), repeats)
    return {"encode_images_per_s": batch / encode, "decode_images_per_s": batch / decode, "batch": batch,
            "resolution": side}


def gpt_training(repeats: int) -> dict:
    """One GPT step from cached codes against one that first decodes the images and encodes them."""
    from torch.utils.data import DataLoader

    from transformer import GPT
    from transformer.train_config import GPTTrainConfig
    from vqgan.config import load_config
    from vqgan.data import ImageFolderDataset, scan_images
    from vqgan.trainer import resolved_precision

    from transformer.pairing import resolve_model_config

    config = load_config(GPTTrainConfig, CONFIGS["gpt"])
    tokenizer, vq_config = bench_tokenizer()
    index = scan_images(config.data.root, progress=False)
    config.model = resolve_model_config(config.model, tokenizer.codebook_size, vq_config.model.grid_size,
                                        index.class_names, "the benchmark tokenizer", config.data.root)
    gpt = GPT(config.model).to(device())
    optimizer = torch.optim.AdamW(gpt.parameters(), lr=1e-4)
    batch = config.data.batch_size
    dataset = ImageFolderDataset(index, list(range(len(index.paths))), vq_config.model.resolution, train=True)
    image_batches = iter(DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=0))
    codes = torch.randint(0, config.model.vocab_size, (len(index.paths), config.model.num_image_tokens))  # the cache
    labels = torch.tensor(index.labels)
    autocast = resolved_precision(config.trainer) == "bf16-mixed"

    def step(x_codes, y):
        with torch.autocast(device(), dtype=torch.bfloat16, enabled=autocast):
            loss = gpt.loss(gpt.condition_tokens(y.to(device())), x_codes.to(device()))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def cached_step():
        rows = torch.randint(0, len(codes), (batch,))
        step(codes[rows], labels[rows])

    def encoding_step():
        item = next(image_batches)
        step(tokenizer.encode(item["image"].to(device())).flatten(1), item["label"])

    cached = timed(cached_step, repeats, warmup=2)
    encoding = timed(encoding_step, repeats, warmup=2)
    return {"gpt_train_step_s_cached": cached, "gpt_train_step_s_encoding": encoding, "speedup": encoding / cached,
            "batch": batch, "bf16_autocast": autocast}


def vqgan_training(repeats: int) -> dict:
    """emoji32 stage-1 steps under Lightning with the GAN on from the start (G + D step, LPIPS)."""
    import tempfile

    from vqgan.callbacks import StepTimer
    from vqgan.config import load_config
    from vqgan.lightning import fit_vqgan
    from vqgan.train_config import VQGANTrainConfig
    from vqgan.trainer import resolved_precision

    steps = max(10, 2 * repeats + 5)
    with tempfile.TemporaryDirectory() as run_dir:
        config = load_config(VQGANTrainConfig, CONFIGS["vqgan"], [
            f"run_dir={run_dir}", f"trainer.max_steps={steps}", "loss.disc_weight=0.5", "loss.disc_start=0",
            "trainer.image_every=0", "trainer.val_every=0", "trainer.progress_bar=false",
            "trainer.checkpoint_every=0", "loss.discriminator.n_layers=2", *CONFIGS["vqgan_overrides"]])
        timer = StepTimer()
        fit_vqgan(config, callbacks=[timer])
    seconds = timer.median(skip=5)
    return {"vqgan_train_step_s": seconds, "images_per_s": config.data.batch_size / seconds,
            "data_wait_share": timer.data_wait_share(skip=5), "batch": config.data.batch_size,
            "resolution": config.data.resolution, "precision": resolved_precision(config.trainer),
            "compile": config.trainer.compile}


PHASES = {
    "sampling_small": lambda r: sampling("small", r),
    "sampling_medium": lambda r: sampling("medium", r),
    "sampling_large": lambda r: sampling("large", r),
    "maskgit_small": lambda r: maskgit_sampling("small", r),
    "maskgit_medium": lambda r: maskgit_sampling("medium", r),
    "gpt_forward": gpt_forward_flops,
    "tokenizer": tokenizer_throughput,
    "gpt_training": gpt_training,
    "vqgan_training": vqgan_training,
}


def run_phase(queue, name: str, repeats: int, threads: int, configs: dict) -> None:
    import_torch()
    torch.set_num_threads(threads)
    CONFIGS.update(configs)
    try:
        result = PHASES[name](repeats)
    except Exception as err:  # noqa: BLE001 - reported in the JSON; the other phases still run
        result = {"error": f"{type(err).__name__}: {err}"}
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(result)


def run_isolated(context, name: str, timeout: float, *args) -> dict:
    """One phase in a fresh (non-daemon, so it may start data workers) process, killed after
    `timeout` seconds; a crash or a time-out is reported as the phase's error."""
    queue = context.Queue()
    process = context.Process(target=run_phase, args=(queue, name, *args))
    process.start()
    try:
        result = queue.get(timeout=timeout)
    except queue_module.Empty:
        result = {"error": f"no result within {timeout:.0f} s" if process.is_alive()
                  else f"the phase process died (exit code {process.exitcode})"}
    process.join(timeout=10)
    if process.is_alive():
        process.kill()
        process.join()
    return result


@dataclass
class BenchConfig:
    repeats: int = 3
    threads: int = 0  # 0: torch's default
    phases: list[str] = field(default_factory=list)  # []: all (sampling_large only on a GPU)
    phase_timeout: float = 900  # seconds before a phase is stopped
    vqgan_config: str = "configs/vqgan/emoji32.yaml"  # tokenizer and stage-1 step to time
    gpt_config: str = "configs/transformer/emoji32.yaml"  # GPT of the training-step comparison
    vqgan_overrides: list[str] = field(default_factory=list)  # key=value overrides of the tokenizer config
    main_job_metrics: str = "runs/demo/metrics.json"  # metrics.json of a main-job run, for its peak memory
    out: str = ""  # also write the JSON here


ALIASES = [
    Alias("--repeats", "repeats"), Alias("--threads", "threads", "0: torch's default"),
    Alias("--phases", "phases", "comma-separated subset of " + ",".join(PHASES), to_value=comma_list),
    Alias("--phase-timeout", "phase_timeout", "seconds before a phase is stopped"),
    Alias("--vqgan-config", "vqgan_config"), Alias("--gpt-config", "gpt_config"),
    Alias("--vqgan-overrides", "vqgan_overrides", "space-separated key=value overrides of the tokenizer config",
          to_value=lambda text: comma_list(",".join(text.split()))),
    Alias("--main-job-metrics", "main_job_metrics"), Alias("--out", "out", "also write the JSON here"),
]


def main() -> None:
    args = config_parser(__doc__, ALIASES).parse_args()  # before torch loads: --help is instant
    config = load_script_config(BenchConfig, args)
    unknown = sorted(set(config.phases) - set(PHASES))
    if unknown:
        sys.exit(f"error: unknown phases {unknown}; choose from {','.join(PHASES)}")
    import_torch()
    from vqgan.hardware import describe_machine

    threads = config.threads or torch.get_num_threads()
    phases = config.phases or [p for p in PHASES if p != "sampling_large" or torch.cuda.is_available()]
    result = {**describe_machine(), "threads": threads, "device": device(), "repeats": config.repeats}
    configs = {"vqgan": config.vqgan_config, "gpt": config.gpt_config, "vqgan_overrides": config.vqgan_overrides}
    result["configs"] = configs
    context = mp.get_context("spawn")
    for name in phases:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        result[name] = run_isolated(context, name, config.phase_timeout, config.repeats, threads, configs)
    main_job = Path(config.main_job_metrics)
    if main_job.is_file():
        result["main_job_peak_rss_mb"] = json.loads(main_job.read_text()).get("peak_rss_mb")
    text = json.dumps(result, indent=2)
    print(text)
    if config.out:
        Path(config.out).write_text(text)

if __name__ == "__main__":
    main()
