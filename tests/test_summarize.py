import json

from omegaconf import OmegaConf

from seqlab.summarize import collect_runs, markdown, summary_table
from tests.test_scripts import run_script


def write_run(folder, horizon, seed, mse):
    folder.mkdir(parents=True)
    OmegaConf.save(OmegaConf.create({"data": {"horizon": horizon}, "seed": seed}), folder / "config.yaml")
    (folder / "metrics.json").write_text(json.dumps({"test/mse": mse}))


def test_runs_are_grouped_with_mean_and_sample_std(tmp_path):
    for i, (horizon, mse) in enumerate([(96, 0.30), (96, 0.34), (96, 0.32), (720, 0.5)]):
        write_run(tmp_path / "sweep" / str(i), horizon, i, mse)
    (tmp_path / "sweep" / "unfinished").mkdir()  # no metrics.json: not counted
    table = summary_table(collect_runs([str(tmp_path / "sweep")]), "data.horizon", ["test/mse"])
    assert table.to_dict("records") == [
        {"data.horizon": 96, "runs": 3, "test/mse": "0.3200 ± 0.0200"},
        {"data.horizon": 720, "runs": 1, "test/mse": "0.5000"},
    ]
    assert markdown(table).splitlines()[2] == "| 96 | 3 | 0.3200 ± 0.0200 |"


def test_the_script_prints_the_table_and_refuses_a_missing_folder(tmp_path):
    write_run(tmp_path / "runs" / "0", 96, 1, 0.25)
    done = run_script("summarize.py", "runs=[runs]", "metrics=[test/mse]", cwd=tmp_path)
    assert "| 96 | 1 | 0.2500 |" in done.stdout
    missing = run_script("summarize.py", "runs=[nowhere]", cwd=tmp_path, check=False)
    assert missing.returncode == 2 and "runs: nowhere is not a folder" in missing.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]  # a report leaves nothing behind
