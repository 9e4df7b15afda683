"""Tests for arreg_core.data (CPU, fast; the real cifar10-jpeg archive is used when ARREG_DATA points at it)."""
import io
import os
import tarfile
import time

import numpy as np
import pytest
import torch
from PIL import Image

from arreg_core import data as D


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ARREG_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _jpeg(rgb, size=32, mode="RGB"):
    buf = io.BytesIO()
    Image.new(mode, (size, size), rgb if mode == "RGB" else rgb[0]).save(buf, "JPEG", quality=95)
    return buf.getvalue()


# ----------------------------------------------------------------------------- synthetic

def test_synthetic_shapes_and_dtypes():
    d = D.load_data("synthetic")
    assert d.x_train.shape == (5000, 3, 32, 32) and d.x_test.shape == (1000, 3, 32, 32)
    assert d.x_train.dtype == torch.uint8 and d.y_train.dtype == torch.int64
    assert d.x_train.is_contiguous() and d.x_test.is_contiguous()
    assert (d.num_classes, d.augment, d.test_transform, d.image_size) == (10, "crop_flip", "none", 32)
    assert torch.bincount(d.y_train).tolist() == [500] * 10
    assert torch.bincount(d.y_test).tolist() == [100] * 10
    assert 0.3 < d.x_train.float().mean().item() / 255 < 0.7


def test_synthetic_deterministic_and_seeded():
    torch.manual_seed(1)
    a = D.load_data("synthetic", n_train=300, n_test=100, seed=3)
    torch.manual_seed(2)  # the global RNG must not matter
    b = D.load_data("synthetic", n_train=300, n_test=100, seed=3)
    c = D.load_data("synthetic", n_train=300, n_test=100, seed=4)
    for k in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(a, k), getattr(b, k))
    assert not torch.equal(a.x_train, c.x_train)
    e = D.load_data("synthetic", n_train=200, n_test=100, seed=3)  # test split independent of n_train
    assert torch.equal(a.x_test, e.x_test)


def test_synthetic_fast_and_not_trivial():
    t = time.perf_counter()
    d = D.load_data("synthetic")
    assert time.perf_counter() - t < 3.0
    # nearest class mean in pixel space is far from perfect but above chance
    x, xt = d.x_train.flatten(1).float(), d.x_test.flatten(1).float()
    means = torch.stack([x[d.y_train == c].mean(0) for c in range(10)])
    acc = (torch.cdist(xt, means).argmin(1) == d.y_test).float().mean().item()
    assert 0.15 < acc < 0.9


# ----------------------------------------------------------------------------- balanced_subset

def test_balanced_subset():
    y = torch.arange(1000) % 10
    i = D.balanced_subset(y, 200, seed=0)
    assert len(i) == 200 and torch.equal(i, i.sort().values) and len(i.unique()) == 200
    assert torch.bincount(y[i]).tolist() == [20] * 10
    assert torch.equal(i, D.balanced_subset(y, 200, seed=0))
    assert not torch.equal(i, D.balanced_subset(y, 200, seed=1))
    assert set(D.balanced_subset(y, 100, seed=0).tolist()) <= set(i.tolist())  # nested for a fixed seed
    counts = torch.bincount(y[D.balanced_subset(y, 23, seed=5)], minlength=10)
    assert counts.sum() == 23 and set(counts.tolist()) == {2, 3}
    assert len(D.balanced_subset(y, 1000, seed=0)) == 1000
    with pytest.raises(ValueError):
        D.balanced_subset(y, 1001, seed=0)
    with pytest.raises(ValueError):
        D.balanced_subset(y, 0, seed=0)


def test_load_data_validation():
    with pytest.raises(ValueError) as e:
        D.load_data("mnist")
    msg = str(e.value)
    assert "\n" not in msg and all(n in msg for n in D.DATASETS)
    for kw in ({"n_train": 0}, {"n_test": -5}):
        with pytest.raises(ValueError):
            D.load_data("synthetic", **kw)


# ----------------------------------------------------------------------------- augmentation

def test_crop_flip_is_a_padded_shift_or_flip():
    x = torch.rand(16, 3, 32, 32)
    out = D.augment_batch(x, "crop_flip", torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.min() >= 0 and out.max() <= 1
    xp = torch.nn.functional.pad(x, (4, 4, 4, 4))
    flips = 0
    for b in range(len(x)):
        hits = [(dy, dx, f) for dy in range(9) for dx in range(9) for f in (0, 1)
                if torch.equal(out[b], (xp[b, :, dy:dy + 32, dx:dx + 32].flip(-1) if f
                                        else xp[b, :, dy:dy + 32, dx:dx + 32]))]
        assert len(hits) == 1
        flips += hits[0][2]
    assert 0 < flips < len(x)
    again = D.augment_batch(x, "crop_flip", torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    assert not torch.equal(out, D.augment_batch(x, "crop_flip", torch.Generator().manual_seed(1)))


def test_random_resized_crop_and_center_crop():
    x = torch.rand(8, 3, 64, 64)
    out = D.augment_batch(x, "random_resized_crop", torch.Generator().manual_seed(0))
    assert out.shape == (8, 3, 56, 56) and out.min() >= 0 and out.max() <= 1
    assert torch.equal(out, D.augment_batch(x, "random_resized_crop", torch.Generator().manual_seed(0)))
    u = torch.rand(4, 1000, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    top, left, h, w = D._resized_crop_boxes(u, 64, 64)
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 64).all() and (left + w <= 64).all()
    assert (h > 0).all() and (w > 0).all()
    t, l, h, w = D._resized_crop_boxes(torch.ones(4, 1, 10, dtype=torch.float64) * 2, 64, 64)  # nothing fits
    assert (t.item(), l.item(), h.item(), w.item()) == (0, 0, 64, 64)
    assert torch.equal(D.test_view(x, "center_crop"), x[..., 4:60, 4:60])
    assert D.test_view(x, "none") is x and D.augment_batch(x, "none", None) is x
    with pytest.raises(ValueError):
        D.augment_batch(x, "mixup", torch.Generator())


# ----------------------------------------------------------------------------- iterate_batches

def test_iterate_batches_epoch_and_determinism():
    n = 103
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8)
    y = torch.arange(n)
    plain = list(D.iterate_batches(x, y, 25))
    assert [len(b[1]) for b in plain] == [25, 25, 25, 25, 3]
    assert torch.equal(torch.cat([b[1] for b in plain]), y)
    assert plain[0][0].dtype == torch.float32 and torch.equal(plain[0][0], x[:25].float() / 255)
    assert len(list(D.iterate_batches(x, y, 25, drop_last=True))) == 4

    def epoch(seed, **kw):
        return list(D.iterate_batches(x, y, 16, shuffle=True, augment="crop_flip",
                                      generator=torch.Generator().manual_seed(seed), **kw))

    a, b = epoch(0), epoch(0)
    ids = torch.cat([yb for _, yb in a])
    assert torch.equal(ids.sort().values, y) and not torch.equal(ids, y)
    assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))
    assert not torch.equal(torch.cat([yb for _, yb in epoch(1)]), ids)
    resumed = epoch(0, start_batch=3)  # mid-epoch resume reproduces the remaining batches
    assert len(resumed) == len(a) - 3
    assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a[3:], resumed))
    g = torch.Generator().manual_seed(7)  # saving/restoring the generator state between epochs
    list(D.iterate_batches(x, y, 16, shuffle=True, augment="crop_flip", generator=g))
    state = g.get_state()
    e2 = list(D.iterate_batches(x, y, 16, shuffle=True, augment="crop_flip", generator=g))
    g2 = torch.Generator()
    g2.set_state(state)
    e2b = list(D.iterate_batches(x, y, 16, shuffle=True, augment="crop_flip", generator=g2))
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(e2, e2b))
    with pytest.raises(ValueError):
        next(D.iterate_batches(x, y, 16, shuffle=True))


def test_image_data_to():
    d = D.load_data("synthetic", n_train=20, n_test=10).to("cpu")
    assert d.x_train.dtype == torch.uint8 and d.name == "synthetic"


# ----------------------------------------------------------------------------- missing data

@pytest.mark.parametrize("name,needle", [("cifar10", "download=True"), ("cifar100", "cifar-100-python"),
                                         ("cifar10-jpeg", "cifar10-jpeg.tar.gz"),
                                         ("tinyimagenet", "tiny-imagenet-200")])
def test_missing_data_message(tmp_path, name, needle):
    with pytest.raises(D.DataNotFoundError) as e:
        D.load_data(name, root=tmp_path)
    assert isinstance(e.value, FileNotFoundError)
    msg = str(e.value)
    assert "\n" not in msg and needle in msg and str(tmp_path) in msg


def test_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("ARREG_DATA", str(tmp_path / "d"))
    monkeypatch.setenv("ARREG_CACHE", str(tmp_path / "c"))
    assert D.data_root() == tmp_path / "d" and D.data_root(tmp_path) == tmp_path
    assert D.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("ARREG_DATA")
    monkeypatch.delenv("ARREG_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert D.data_root() == tmp_path / "x" / "arreg" / "data" and D.cache_dir() == tmp_path / "x" / "arreg"


# ----------------------------------------------------------------------------- fake on-disk data sets

def test_tinyimagenet_fake_folder(tmp_path, tmp_cache):
    d = tmp_path / "tiny-imagenet-200"
    wnids = ["n002", "n001", "n003"]  # wnids.txt order, not sorted order, gives the labels
    (d / "val" / "images").mkdir(parents=True)
    (d / "wnids.txt").write_text("\n".join(wnids) + "\n")
    shade = lambda c: (40 + 80 * c, 200 - 60 * c, 90)
    for c, w in enumerate(wnids):
        (d / "train" / w / "images").mkdir(parents=True)
        for k in range(4):
            (d / "train" / w / "images" / f"{w}_{k}.JPEG").write_bytes(_jpeg(shade(c), 64))
    (d / "train" / wnids[0] / "images" / "gray_0.JPEG").write_bytes(_jpeg((128,), 64, mode="L"))
    val_labels = [2, 0, 1, 1, 2, 0]
    ann = []
    for k, c in enumerate(val_labels):
        (d / "val" / "images" / f"val_{k}.JPEG").write_bytes(_jpeg(shade(c), 64))
        ann.append(f"val_{k}.JPEG\t{wnids[c]}\t0\t0\t63\t63")
    (d / "val" / "val_annotations.txt").write_text("\n".join(ann) + "\n")

    data = D.load_data("tinyimagenet", root=tmp_path)
    assert data.x_train.shape == (13, 3, 64, 64) and data.x_test.shape == (6, 3, 64, 64)
    assert (data.num_classes, data.augment, data.test_transform, data.image_size) == (
        3, "random_resized_crop", "center_crop", 56)
    assert torch.bincount(data.y_train).tolist() == [5, 4, 4]
    assert data.y_test.tolist() == val_labels  # sorted val_0..val_5 order
    red = data.x_test[:, 0].float().mean((1, 2))
    assert torch.allclose(red, torch.tensor([40 + 80.0 * c for c in val_labels]), atol=4)
    assert len(list(tmp_cache.glob("tinyimagenet-*.npz"))) == 1
    again = D.load_data("tinyimagenet", root=tmp_path / "tiny-imagenet-200", n_test=3, seed=1)
    assert torch.bincount(again.y_test).tolist() == [1, 1, 1]


def _fake_cifar_tar(path, prefix="CIFAR-10-images/", shade=0):
    with tarfile.open(path, "w:gz") as tf:
        def add(name, blob):
            info = tarfile.TarInfo(prefix + name)
            info.size = len(blob)
            tf.addfile(info, io.BytesIO(blob))
        for c, cls in enumerate(D.CIFAR10_CLASSES):
            for k in range(2):
                add(f"train/{cls}/{k:04d}.jpg", _jpeg((20 * c + shade, 0, 0)))
            add(f"test/{cls}/0000.jpg", _jpeg((20 * c + shade, 0, 0)))
        add("README.md", b"not an image")
        link = tarfile.TarInfo(prefix + "train/cat/9999.jpg")  # non-regular members are ignored
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)


def test_cifar10_jpeg_fake_archive_and_folder(tmp_path, tmp_cache):
    _fake_cifar_tar(tmp_path / "cifar10-jpeg.tar.gz")
    d = D.load_data("cifar10-jpeg", root=tmp_path)
    assert d.x_train.shape == (20, 3, 32, 32) and d.x_test.shape == (10, 3, 32, 32)
    assert d.y_train.tolist() == [c for c in range(10) for _ in range(2)]
    assert torch.allclose(d.x_train[:, 0].float().mean((1, 2)), 20.0 * d.y_train.float(), atol=4)
    # a changed archive is decoded again
    os.remove(tmp_path / "cifar10-jpeg.tar.gz")
    _fake_cifar_tar(tmp_path / "cifar10-jpeg.tar.gz", prefix="", shade=10)
    d2 = D.load_data("cifar10-jpeg", root=tmp_path)
    assert torch.allclose(d2.x_train[:, 0].float().mean((1, 2)), 20.0 * d2.y_train.float() + 10, atol=4)
    assert len(list(tmp_cache.glob("cifar10-jpeg-*.npz"))) == 2
    # a clone of the repository: CIFAR-10-images/{train,test}/<class>/*.jpg
    clone = tmp_path / "clone"
    with tarfile.open(tmp_path / "cifar10-jpeg.tar.gz") as tf:
        for m in tf.getmembers():
            if m.isreg() and m.name.endswith(".jpg"):
                p = clone / "CIFAR-10-images" / m.name
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(tf.extractfile(m).read())
    d3 = D.load_data("cifar10-jpeg", root=clone)
    assert torch.equal(d3.x_train, d2.x_train) and torch.equal(d3.y_test, d2.y_test)


# ----------------------------------------------------------------------------- the real cifar10-jpeg archive

def test_cifar10_jpeg_real(cifar10_jpeg_root, monkeypatch):
    d = D.load_data("cifar10-jpeg", root=cifar10_jpeg_root)  # decodes once (seconds), then cached
    assert d.x_train.shape == (50000, 3, 32, 32) and d.x_test.shape == (10000, 3, 32, 32)
    assert d.x_train.dtype == torch.uint8 and d.x_train.is_contiguous()
    assert torch.bincount(d.y_train).tolist() == [5000] * 10
    assert torch.bincount(d.y_test).tolist() == [1000] * 10
    mean = d.x_train.sum((0, 2, 3), dtype=torch.int64).double() / (50000 * 32 * 32 * 255)
    assert torch.allclose(mean, torch.tensor([0.4913, 0.4821, 0.4465], dtype=torch.float64), atol=0.002)

    def no_decode(*_):
        raise AssertionError("decoded again instead of reading the cache")
    monkeypatch.setattr(D, "_decode_member", no_decode)
    t = time.perf_counter()
    d2 = D.load_data("cifar10-jpeg", root=cifar10_jpeg_root)
    assert time.perf_counter() - t < 10
    assert torch.equal(d2.x_test, d.x_test)
    s = D.load_data("cifar10-jpeg", root=cifar10_jpeg_root, n_train=1000, n_test=200, seed=0)
    assert s.x_train.shape == (1000, 3, 32, 32) and torch.bincount(s.y_test).tolist() == [20] * 10
    i = D.balanced_subset(d.y_train, 1000, 0)
    assert torch.equal(s.x_train, d.x_train[i])


# ----------------------------------------------------------------------------- stale cache, bad archives

def _tar(path, members, mode="w"):
    """A tar of (name, bytes) members."""
    with tarfile.open(path, mode) as tf:
        for name, blob in members:
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tf.addfile(info, io.BytesIO(blob))


def _cifar_members(shade_of_first_test=0, pad_to=1500):
    """Every CIFAR-10 class with one train and one test image, each padded to `pad_to` bytes (a
    JPEG decoder ignores what follows its end marker), so that archives of other pixels have the
    same size."""
    out = []
    for c, cls in enumerate(D.CIFAR10_CLASSES):
        for split in ("train", "test"):
            shade = shade_of_first_test if (split, c) == ("test", 0) else 20 * c
            blob = _jpeg((shade, 0, 0))
            out.append((f"{split}/{cls}/0000.jpg", blob + bytes(pad_to - len(blob))))
    return out


def test_a_same_size_archive_with_other_images_in_the_middle_is_decoded_again(tmp_path, tmp_cache):
    pad = [("pad-head.bin", bytes(3 << 19))], [("pad-tail.bin", bytes(3 << 19))]  # 1.5 MiB each end
    archive = tmp_path / "cifar10-jpeg.tar.gz"  # an uncompressed tar: "r:*" reads it whatever its name
    _tar(archive, pad[0] + _cifar_members(shade_of_first_test=0) + pad[1])
    size, first = archive.stat().st_size, D.load_data("cifar10-jpeg", root=tmp_path)
    _tar(archive, pad[0] + _cifar_members(shade_of_first_test=200) + pad[1])
    assert archive.stat().st_size == size  # same size, same first and last MiB
    second = D.load_data("cifar10-jpeg", root=tmp_path)
    assert first.x_test[0, 0].float().mean() < 10 and second.x_test[0, 0].float().mean() > 190


def _fails_in_one_line(root, *needles):
    with pytest.raises(D.DataError) as err:
        D.load_data("cifar10-jpeg", root=root)
    msg = str(err.value)
    assert "\n" not in msg and all(n in msg for n in needles), msg
    return msg


@pytest.mark.parametrize("damage", ["truncated", "random", "empty", "empty tar"])
def test_a_broken_archive_is_one_line_naming_it(tmp_path, tmp_cache, damage):
    archive = tmp_path / "cifar10-jpeg.tar.gz"
    _fake_cifar_tar(archive)
    blob = archive.read_bytes()
    if damage == "truncated":
        archive.write_bytes(blob[: len(blob) // 2])
    elif damage == "random":
        archive.write_bytes(np.random.default_rng(0).bytes(len(blob)))
    elif damage == "empty":
        archive.write_bytes(b"")
    else:
        _tar(archive, [], mode="w:gz")
    _fails_in_one_line(tmp_path, str(archive), "download it again")


def test_a_non_jpeg_or_wrong_size_image_is_one_line_naming_it(tmp_path, tmp_cache):
    good = _cifar_members()
    _tar(tmp_path / "cifar10-jpeg.tar.gz", good + [("train/cat/0001.jpg", b"<html>not an image</html>")])
    _fails_in_one_line(tmp_path, "train/cat/0001.jpg", "is not an image")
    _tar(tmp_path / "cifar10-jpeg.tar.gz", good + [("train/cat/0002.jpg", _jpeg((1, 2, 3), size=64))])
    _fails_in_one_line(tmp_path, "train/cat/0002.jpg", "64x64 pixels, not 32x32")


def test_a_huge_member_is_refused_unread(tmp_path, tmp_cache):
    import tracemalloc

    huge = 64 << 20  # 64 MiB of zeros: a 64 KB member of the compressed archive
    archive = tmp_path / "cifar10-jpeg.tar.gz"
    with tarfile.open(archive, "w:gz", compresslevel=1) as tf:
        info = tarfile.TarInfo("train/cat/huge.jpg")
        info.size = huge
        tf.addfile(info, io.BytesIO(bytes(huge)))
    assert archive.stat().st_size < huge // 50
    tracemalloc.start()
    try:
        _fails_in_one_line(tmp_path, "train/cat/huge.jpg", "it was not read")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < huge // 8, peak


def test_a_cifar10_images_folder_without_test_is_incomplete_not_absent(tmp_path, tmp_cache):
    (tmp_path / "CIFAR-10-images" / "train" / "cat").mkdir(parents=True)
    (tmp_path / "CIFAR-10-images" / "train" / "cat" / "0000.jpg").write_bytes(_jpeg((0, 0, 0)))
    with pytest.raises(D.DataError, match="incomplete") as err:
        D.load_data("cifar10-jpeg", root=tmp_path)
    assert str(tmp_path / "CIFAR-10-images") in str(err.value) and "no test/" in str(err.value)
    assert not isinstance(err.value, D.DataNotFoundError)
