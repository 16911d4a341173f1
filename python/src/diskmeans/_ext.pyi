# Stubs of the C extension (internal; the public API is diskmeans.train,
# assign and plan). inputs holds one spec per input, made by
# _api._input_specs: ("file", path bytes, name, format, raw_dim, raw_dtype,
# dataset or None) or ("array", obj, name, release_pages); several specs are
# one data set, their rows in order (dkm_source_concat). params holds
# dkm_params fields by name, made by _api._params and train: integers, tol
# (float), balance and resume (bool), and tmp_dir, checkpoint and
# checkpoint_identity (bytes without NUL, or None).
from typing import Any, Callable, Optional, Sequence

library_version: str

def train(inputs: Sequence[tuple], params: dict, init: Optional[Any],
          progress: Optional[Callable[..., Any]]) -> dict: ...
def assign(inputs: Sequence[tuple], centroids: Any, params: dict,
           progress: Optional[Callable[..., Any]]) -> tuple[bytearray, bytearray]: ...
def plan(inputs: Sequence[tuple], params: dict, init: Optional[Any]) -> dict: ...
def check_params(params: dict) -> None: ...
