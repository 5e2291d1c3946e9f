from firmware.conftest import fixture_model_dir, host_build, mps2_build, nucleo_build  # noqa: F401
