from pathlib import Path

import pytest

from vidrec.config import Config, load_config


def test_defaults_without_environment() -> None:
    assert load_config({}) == Config()


def test_environment_overrides_typed_fields() -> None:
    cfg = load_config(
        {
            "VIDREC_REDIS__MAX_CONCURRENCY": "8",
            "VIDREC_REDIS__CLUSTER": "false",
            "VIDREC_RANKING__HEAD_WEIGHTS": "1, 0.5, 0.25",
            "VIDREC_DATA__KUAIREC_DIR": "/tmp/k",
            "VIDREC_UNRELATED": "x",
        }
    )
    assert cfg.redis.max_concurrency == 8
    assert cfg.redis.cluster is False
    assert cfg.ranking.head_weights == (1.0, 0.5, 0.25)
    assert cfg.data.kuairec_dir == Path("/tmp/k")
    assert cfg.features == Config().features  # untouched sections stay default


@pytest.mark.parametrize(
    ("name", "value"),
    [("VIDREC_REDIS__MAX_CONCURRENCY", "many"), ("VIDREC_REDIS__CLUSTER", "maybe")],
)
def test_bad_environment_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        load_config({name: value})
