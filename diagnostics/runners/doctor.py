"""Environment checks behind `cli.py doctor`: each says what is wrong and how to fix it."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from data.settings import PROJECT_ROOT, Settings

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str


def _pinned_versions() -> dict[str, str]:
    pins = {}
    for line in (PROJECT_ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.strip().lower()] = version.strip()
    return pins


def check_python() -> Check:
    ok = sys.version_info[:2] == (3, 11)
    return Check("python", OK if ok else WARN,
                 f"{sys.version.split()[0]}" + ("" if ok else "; PhishLens is tested on 3.11"))


def check_packages() -> list[Check]:
    checks = []
    for name, wanted in _pinned_versions().items():
        try:
            found = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            checks.append(Check(f"package {name}", FAIL, "missing; run `bash tasks.sh install`"))
            continue
        same = found.split("+")[0] == wanted
        checks.append(Check(f"package {name}", OK if same else WARN,
                            found if same else f"{found} installed, {wanted} pinned; run `bash tasks.sh install`"))
    return checks


def check_device(settings: Settings) -> Check:
    import torch

    if torch.cuda.is_available():
        return Check("device", OK, f"CUDA {torch.cuda.get_device_name(0)} (bf16); setting: {settings.device}")
    if settings.device.startswith("cuda"):
        return Check("device", FAIL, "PHISHLENS_DEVICE asks for cuda but no GPU is visible; use auto or cpu")
    from models.precision import PrecisionError, check_precision, matmul_rates, native_bf16

    try:
        check_precision(settings.precision, torch.device("cpu"))
    except PrecisionError as exc:
        return Check("device", FAIL, str(exc))
    threads = f"CPU, {torch.get_num_threads()} threads, scoring in {settings.precision}"
    # Advice from measured rates, not CPU flags: an AVX2-only CPU ran int8 at 1/50 of fp32.
    rates = matmul_rates(settings.models_dir)
    hardware = "bf16 runs in hardware here (AMX / AVX-512 BF16)" if native_bf16() else "no bf16 in hardware"
    measured = f"measured matmul rates: {rates.describe()}"
    slower = [p for p in ("bf16", "int8") if rates.slower_than_fp32(p)]
    faster = sorted((p for p in ("bf16", "int8") if rates.against_fp32(p) >= 1.5), key=rates.against_fp32)
    if settings.precision in slower:
        return Check("device", WARN, f"{threads}; {hardware}; {measured}: {settings.precision} is slower than fp32 "
                                     f"here; use PHISHLENS_PRECISION=fp32")
    advice = (f"PHISHLENS_PRECISION={faster[-1]} scores faster than fp32" if faster
              else "keep fp32: neither bf16 nor int8 is faster here")
    if slower:
        advice += f"; {' and '.join(slower)} would be slower than fp32 here"
    return Check("device", OK, f"{threads}; {hardware}; {measured}: {advice}")


def check_model(settings: Settings) -> Check:
    from models.loading import HASH_FILE, prepare_model
    from models.registry import resolve_model

    spec = resolve_model(settings.model)
    if spec.source.startswith("pypi-gguf:"):
        module = spec.source.removeprefix("pypi-gguf:").split("/")[0]
        if importlib.util.find_spec(module) is None:
            return Check("model", FAIL, f"{module} not installed; run `bash tasks.sh install`")
        folder = settings.models_dir / spec.name
        if not (folder / HASH_FILE).exists():
            return Check("model", WARN, f"{spec.name} not converted yet; run `python cli.py prepare-model`")
        return Check("model", OK, f"{spec.name} at {folder}")
    path = Path(prepare_model(spec, settings.models_dir))
    if path.is_dir():
        has_weights = any(path.glob("*.safetensors"))
        return Check("model", OK if has_weights else FAIL,
                     f"{path}" if has_weights else f"{path} has no .safetensors weights (only safetensors are loaded)")
    return Check("model", WARN, f"{spec.source} is a hub id: it needs network access or a local copy")


def check_store(settings: Settings) -> list[Check]:
    from data.store import Store, StoreError

    path = settings.store_path
    if not path.exists():
        return [Check("store", WARN, f"no store at {path}; `python cli.py demo` builds one")]
    checks = [*check_ingest_scratch(path)]
    try:
        store = Store.open(path, read_only=True, busy_timeout=10)
        damaged = store.damaged_tables()  # a full read: block corruption shows nowhere else
        if damaged:
            table, error = next(iter(damaged.items()))
            return [*checks, Check("store", FAIL, f"{path}: {len(damaged)} damaged tables ({', '.join(damaged)}); "
                                                  f"reading {table}: {error}. The file was not modified: move it "
                                                  f"aside and rebuild it, or restore it from a copy.")]
        with store.connection():
            version = store.schema_version()
            problems = store.integrity_problems()
            adapters = store.adapters()[["id", "path"]].itertuples(index=False)
        orphans, unsplit = problems["orphan_predictions"], problems["emails_without_split"]
        interrupted, running = problems["runs_interrupted"], problems["runs_running"]
    except StoreError as exc:
        return [*checks, Check("store", FAIL, str(exc))]
    checks.append(Check("store", OK, f"{path}, schema {version}, every table read in full"))
    if orphans or unsplit:
        checks.append(Check("store integrity", FAIL, f"{orphans} predictions of unknown emails, {unsplit} emails "
                                                   f"without a split; rebuild the store"))
    else:
        checks.append(Check("store integrity", OK, "every prediction has its email, every email its split"))
    now = f"; {running} running now (their process is alive)" if running else ""
    if interrupted:
        checks.append(Check("runs", WARN, f"{interrupted} runs interrupted: their process ended without finishing "
                                          f"them (killed jobs; their writes were rolled back); `status` names the "
                                          f"command to rerun to resume{now}"))
    elif running:
        checks.append(Check("runs", OK, f"{running} runs running now (their process is alive)"))
    missing = [a for a, p in adapters if not Path(p).exists()]
    if missing:
        checks.append(Check("adapters", FAIL, f"{len(missing)} adapter folders missing, e.g. {missing[0]}; retrain"))
    return checks


def check_ingest_scratch(store_path: Path) -> list[Check]:
    """Scratch folders an ingest leaves beside the store only when it was killed."""
    from data.corpora import INGEST_SCRATCH_PREFIX

    left = sorted(store_path.parent.glob(f"{INGEST_SCRATCH_PREFIX}*"))
    if not left:
        return []
    size = sum(f.stat().st_size for folder in left for f in folder.rglob("*") if f.is_file()) / 2**20
    return [Check("ingest scratch", WARN, f"{len(left)} scratch folders of killed ingests ({size:.0f} MiB), e.g. "
                                          f"{left[0]}: nothing in the store refers to them; delete them")]


def check_disk(settings: Settings) -> Check:
    folder = settings.home if settings.home.exists() else settings.home.parent
    free = shutil.disk_usage(folder).free / 2**30
    return Check("disk", OK if free > 2 else WARN, f"{free:.1f} GiB free under {folder}"
                 + ("" if free > 2 else "; a converted model takes ~0.5 GiB, each adapter a few MB"))


def check_data(settings: Settings) -> Check | None:
    if settings.data_dir is None:
        return None
    exists = settings.data_dir.is_dir()
    return Check("data", OK if exists else FAIL,
                 str(settings.data_dir) if exists else f"PHISHLENS_DATA={settings.data_dir} does not exist")


def run_checks(settings: Settings) -> list[Check]:
    """Every check, in the order a newcomer would fix them."""
    checks = [check_python(), *check_packages(), check_device(settings), check_model(settings),
              *check_store(settings), check_disk(settings), check_data(settings)]
    return [c for c in checks if c is not None]
