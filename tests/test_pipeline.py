"""The scan driver with a stand-in engine: order, batching, failure isolation — no torch needed."""

from pathlib import Path

import pytest
from PIL import Image

from fakevlm_cli.core.engine_types import Answer, ModelInfo
from fakevlm_cli.core.files import resume_key
from fakevlm_cli.core.options import JudgeOptions
from fakevlm_cli.media.discover import Candidate
from fakevlm_cli.outputs.heatmaps import HeatmapFolder
from fakevlm_cli.run.pipeline import Scanner
from fakevlm_cli.run.plan import Plan


class StubEngine:
    """Scores an image by its red level; a batch containing a pure-white image raises, like an OOM would."""

    info = ModelInfo(id="stub", revision=None, dtype="float32", quant="none", device="cpu")

    verdict_steps = 16

    def __init__(self):
        self.batches: list[int] = []
        self.freed = 0

    def preprocess(self, image):
        return image.getpixel((0, 0))

    def sharing_cpu(self, loader_threads):
        import contextlib

        return contextlib.nullcontext()

    def free_memory(self):
        self.freed += 1

    def verdicts(self, pixels):
        self.batches.append(len(pixels))
        if (255, 255, 255) in pixels:
            raise RuntimeError("CUDA out of memory (simulated)")
        return [Answer(p_fake=p[0] / 255, verdict_step=0) for p in pixels]


def make(folder: Path, n: int, white: set[int] = frozenset()) -> list[Candidate]:
    folder.mkdir(exist_ok=True)
    out = []
    for i in range(n):
        colour = (255, 255, 255) if i in white else (i * 10, 0, 0)
        path = folder / f"{i:02d}.png"
        Image.new("RGB", (8, 8), colour).save(path)
        out.append(Candidate(path=path, explicit=True))
    return out


def test_a_failing_batch_is_split_down_to_the_guilty_image(tmp_path):
    engine = StubEngine()
    records = list(Scanner(engine, JudgeOptions(batch_size=8, workers=3)).run(make(tmp_path, 16, white={5})))
    assert [Path(r.path).name for r in records] == [f"{i:02d}.png" for i in range(16)]
    bad = records[5]
    assert bad.verdict == "error" and "out of memory" in bad.error and bad.p_fake is None
    good = [r for i, r in enumerate(records) if i != 5]
    assert all(r.verdict in ("real", "fake") and r.p_fake == round(int(Path(r.path).stem) * 10 / 255, 6)
               for r in good)
    assert engine.batches[:2] == [8, 4]  # first batch failed, halves retried
    assert engine.freed == 3  # the engine gave its cached memory back before each retry: 8 → 4 → 2 → 1


def test_order_kept_with_errors_between_images(tmp_path):
    cands = make(tmp_path, 6)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    cands.insert(3, Candidate(path=tmp_path / "bad.png", explicit=True))
    cands.insert(0, Candidate(path=tmp_path / "gone.png", explicit=True, error="no such file or directory"))
    scanner = Scanner(StubEngine(), JudgeOptions(batch_size=4, workers=4))
    records = list(scanner.run(cands))
    assert [Path(r.path).name for r in records] == [Path(c.path).name for c in cands]
    assert records[0].error == "no such file or directory" and records[4].verdict == "error"
    assert scanner.stats.verdicts["error"] == 2 and scanner.stats.model_images == 6


def test_resume_set_skips_recorded_files(tmp_path):
    cands = make(tmp_path, 3)
    first = list(Scanner(StubEngine(), JudgeOptions()).run(cands))
    done = {resume_key(first[1].path): frozenset({first[1].sha256})}
    scanner = Scanner(StubEngine(), Plan(JudgeOptions(), resume=done))
    again = list(scanner.run(cands))
    assert [r.path for r in again] == [first[0].path, first[2].path] and scanner.stats.resumed == 1


def test_non_image_found_in_a_folder_is_skipped_but_named_one_is_an_error(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "fake.jpg").write_text("hello")
    scanner = Scanner(None, JudgeOptions())
    records = list(scanner.run([Candidate(tmp_path / "notes.txt", explicit=False),
                                Candidate(tmp_path / "fake.jpg", explicit=False),
                                Candidate(tmp_path / "notes.txt", explicit=True)]))
    assert [(Path(r.path).name, r.verdict) for r in records] == [("fake.jpg", "error"), ("notes.txt", "error")]
    assert scanner.stats.skipped == 1


def test_permission_denied_is_an_error_record(tmp_path, monkeypatch):
    import os as os_module

    cands = make(tmp_path, 2)
    real_open = os_module.open

    def deny(path, *args, **kwargs):
        if str(path).endswith("01.png"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("fakevlm_cli.media.reading.os.open", deny)
    records = list(Scanner(StubEngine(), JudgeOptions(workers=1)).run(cands))
    assert records[1].verdict == "error" and records[1].error == "permission denied"
    assert records[0].verdict in ("real", "fake")


@pytest.mark.video
def test_a_clip_too_big_for_the_model_is_retried_in_smaller_slices_and_pictures_are_judged_once(tmp_path):
    """An engine that runs out of memory above 2 images per call, a batch of 4 holding two pictures and a clip of
    4 frames: the pictures are judged once (one note, one map each), the clip's frames again in slices of 2."""
    import factories as f
    import stub_engine

    class SmallGpu(stub_engine.StubEngine):
        def __init__(self):
            super().__init__()
            self.judged = 0

        def verdicts(self, pixels):
            if len(pixels) > 2:
                raise RuntimeError("CUDA out of memory (simulated)")
            self.judged += len(pixels)
            return super().verdicts(pixels)

    red = Image.new("RGB", (64, 48), (230, 20, 20))
    for name in ("a.png", "b.png"):
        red.save(tmp_path / name)
    f.video_clip(tmp_path / "clip.mp4", [red] * 4)
    engine, maps = SmallGpu(), tmp_path / "maps"
    plan = Plan(JudgeOptions(batch_size=4, video_frames=4, localise=True), heatmaps=HeatmapFolder(maps))
    scanner = Scanner(engine, plan)
    jobs = [scanner.inspector.inspect(Candidate(path=tmp_path / name, explicit=True))
            for name in ("a.png", "b.png", "clip.mp4")]
    frames = len(jobs[2].pixels)
    assert frames == 4
    a, b, clip = scanner.finish(jobs)
    assert engine.judged == 2 + frames  # nothing judged twice: the failed calls judged nothing
    for picture in (a, b):
        assert picture.verdict == "fake" and picture.localisation["heatmap"] and picture.notes == []
    assert clip.verdict == "fake" and len(clip.video["sampled"]) == frames and clip.error is None
    (no_map,) = [n for n in clip.notes if n.startswith("no heatmap")]
    assert no_map.startswith("no heatmap: maps are made for still pictures, not for video clips")
    assert len(list(maps.iterdir())) == 2


@pytest.mark.video
def test_a_clip_that_fails_for_another_reason_than_memory_is_not_judged_again_in_smaller_slices(tmp_path):
    """Halving a clip's slices helps only when it ran out of memory: a clip the model fails on for any other
    reason is an error record after one call, not after one call per halving (8 → 4 → 2 → 1)."""
    import factories as f
    import stub_engine

    class BrokenOnClips(stub_engine.StubEngine):
        def __init__(self):
            super().__init__()
            self.calls: list[int] = []

        def verdicts(self, pixels):
            self.calls.append(len(pixels))
            raise ValueError("the vision tower rejects this tensor (simulated)")

    f.video_clip(tmp_path / "clip.mp4", [Image.new("RGB", (64, 48), (230, 20, 20))] * 8)
    engine = BrokenOnClips()
    scanner = Scanner(engine, JudgeOptions(batch_size=8, video_frames=8))
    (clip,) = scanner.finish([scanner.inspector.inspect(Candidate(path=tmp_path / "clip.mp4", explicit=True))])
    assert clip.verdict == "error" and "rejects this tensor" in clip.error
    assert engine.calls == [8]


def test_out_of_memory_is_told_from_other_failures():
    from fakevlm_cli.run.pipeline import out_of_memory

    class OutOfMemoryError(RuntimeError):  # torch.OutOfMemoryError's name, without importing torch
        pass

    assert out_of_memory(OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert out_of_memory(RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate "
                                      "memory: you tried to allocate 68719476736 bytes"))
    assert out_of_memory(MemoryError())
    assert not out_of_memory(ValueError("Image features and image tokens do not match"))


def test_the_plans_heatmap_writer_gets_each_still_pictures_map_and_a_failed_write_is_a_note(monkeypatch, tmp_path):
    """The heatmap picture goes through the one writer object the plan carries (the seam an output-guarded
    writer plugs into): called once per still picture with its record, picture and map; where it wrote is the
    record's `localisation.heatmap`; a write that fails is a note and the verdict stands. The executor loads the
    engine through `run.load_engine`, the seam the tests stand a stub in."""
    import stub_engine

    from fakevlm_cli.core.errors import OutputError
    from fakevlm_cli.core.options import EngineOptions
    from fakevlm_cli.run import EngineSpec, LocalExecutor

    stub_engine.install(monkeypatch)
    for name, colour in (("ok.png", (230, 20, 20)), ("full.png", (220, 30, 30))):
        Image.new("RGB", (64, 48), colour).save(tmp_path / name)

    class Writer:
        def __init__(self):
            self.calls = []

        def write(self, record, preview, localisation, *, boxes):
            self.calls.append((Path(record.path).name, preview.size, boxes))
            if record.path.endswith("full.png"):
                raise OutputError(f"maps/{Path(record.path).stem}.png: no space left on the device")
            return f"maps/{Path(record.path).stem}.png"

    writer, notes = Writer(), []
    plan = Plan(JudgeOptions(localise=True), engine=EngineSpec(EngineOptions()), heatmaps=writer)
    with LocalExecutor(notify=notes.append) as executor:
        executor.start(plan)
        assert executor.model is not None and executor.model["id"] == EngineOptions().model  # as asked for
        ok, full = executor.run(plan, [Candidate(tmp_path / n, explicit=True) for n in ("ok.png", "full.png")])
    # both red, judged fake: their maps are drawn with the regions boxed
    assert writer.calls == [("ok.png", (64, 48), True), ("full.png", (64, 48), True)]
    assert ok.localisation["heatmap"] == "maps/ok.png" and ok.localisation["regions"] and ok.notes == []
    assert full.verdict == "fake" and full.localisation["heatmap"] is None
    assert full.notes == ["heatmap not written: maps/full.png: no space left on the device"]
    # without --localise the writer is never asked for a map
    writer.calls.clear()
    plain = Plan(JudgeOptions(), engine=EngineSpec(EngineOptions()), heatmaps=writer)
    with LocalExecutor() as executor:
        (record,) = executor.run(plain, [Candidate(tmp_path / "ok.png", explicit=True)])
    assert writer.calls == [] and record.localisation is None


def test_executor_for_chooses_once_and_refuses_bad_cluster_options_before_anything_starts():
    import pytest

    from fakevlm_cli.core.errors import FakevlmError
    from fakevlm_cli.core.options import ClusterOptions
    from fakevlm_cli.run import LocalExecutor, executor_for
    from fakevlm_cli.run.distributed import RayExecutor

    assert isinstance(executor_for(ClusterOptions()), LocalExecutor)
    on_ray = executor_for(ClusterOptions(ray="local", replicas=2))
    assert isinstance(on_ray, RayExecutor) and on_ray.cluster is None  # nothing joined until start
    with pytest.raises(FakevlmError, match="--replicas needs --ray"):
        executor_for(ClusterOptions(replicas=2))
    with pytest.raises(FakevlmError, match="is not a cluster address"):
        executor_for(ClusterOptions(ray="./photos"))


def test_replicas_the_cluster_cannot_place_are_refused_and_those_it_can_leave_a_cpu_to_read_the_files():
    """Issue 23 item 8: --replicas 12 on a 2-CPU Ray took every CPU the reading tasks need, and the job waited
    silently forever. Now it is one line before the job starts; a count that fits leaves a whole CPU free (the
    shares were rounded up: 6 replicas on 2 CPUs took 1.02)."""
    import pytest

    from fakevlm_cli.core.errors import FakevlmError
    from fakevlm_cli.core.options import EngineOptions
    from fakevlm_cli.run.cluster import Cluster, check_replicas, cpus_per_replica
    from fakevlm_cli.run.plan import EngineSpec

    spec = EngineSpec(EngineOptions())
    two_cpus = Cluster(address="local", started=False, cpus=2, gpus=0)
    with pytest.raises(FakevlmError, match=r"^--replicas 12: Ray has 2 CPUs and no GPU.*give --replicas 10 or fewer$"):
        check_replicas(two_cpus, 12, spec)
    for cpus in (2, 3, 8, 16):
        for count in range(1, 40):
            cluster = Cluster(address="local", started=False, cpus=cpus, gpus=0)
            try:
                check_replicas(cluster, count, spec)
            except FakevlmError:
                continue
            assert count * cpus_per_replica(cpus, count) <= cpus - 1 + 1e-9, (cpus, count)
    with pytest.raises(FakevlmError, match="a replica needs more than one CPU"):
        check_replicas(Cluster(address="local", started=False, cpus=1, gpus=0), 1, spec)
    gpus = Cluster(address="auto", started=False, cpus=32, gpus=4)
    check_replicas(gpus, 4, spec)
    with pytest.raises(FakevlmError, match=r"^--replicas 5: each replica takes 1 GPU and Ray has 4; give --replicas 4"):
        check_replicas(gpus, 5, spec)


def test_a_ray_address_where_nothing_listens_fails_in_seconds_with_one_line():
    """Issue 23 item 8: `--ray 127.0.0.1:1` failed after 822 s and 60 lines of Ray's retries."""
    import socket

    import pytest

    from fakevlm_cli.core.errors import FakevlmError
    from fakevlm_cli.run.cluster import check_reachable

    with socket.socket() as closed:  # a port that was free a moment ago: nothing listens there
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(FakevlmError, match=rf"^--ray 127.0.0.1:{port}: cannot reach Ray there: .+$"):
        check_reachable(f"127.0.0.1:{port}")
    with pytest.raises(FakevlmError, match=r"^--ray ray://head:x: 'x' is not a port number$"):
        check_reachable("ray://head:x")
    check_reachable("local")  # nothing to reach: started here


def test_starting_and_stopping_ray_keeps_fakevlms_sigterm_handler(monkeypatch):
    """ray.init installs its own SIGTERM handler: a terminated --ray scan exited 15 (or died of SIGABRT) where the
    README promises 143. Connecting and closing leave the run's handlers as they were."""
    import signal
    import sys
    import types

    from fakevlm_cli.core.options import ClusterOptions
    from fakevlm_cli.run import cluster as cluster_module

    def ray_handler(signum, frame):
        raise SystemExit(signum)

    def init(**kwargs):
        signal.signal(signal.SIGTERM, ray_handler)

    fake_ray = types.SimpleNamespace(is_initialized=lambda: False, init=init, cluster_resources=lambda: {"CPU": 2},
                                     shutdown=lambda: signal.signal(signal.SIGTERM, ray_handler))
    monkeypatch.setitem(sys.modules, "ray", fake_ray)
    monkeypatch.setattr(cluster_module, "quiet_ray", lambda: None)

    def ours(signum, frame):
        pass

    previous = signal.signal(signal.SIGTERM, ours)
    try:
        connected = cluster_module.connect(ClusterOptions(ray="local"))
        assert signal.getsignal(signal.SIGTERM) is ours and connected.started
        connected.close()
        assert signal.getsignal(signal.SIGTERM) is ours
    finally:
        signal.signal(signal.SIGTERM, previous)
