"""YAML spec → typed, validated spec. Imports no torch or numpy.

- :func:`load_spec` reads a spec file and returns a :class:`Spec`;
- :class:`SpecDoc` (``spec.doc``) locates values and validates a section with a
  :class:`Config` subclass, reporting every error with file, line and key;
- :class:`Config` is the base class of the configs of registered things.
"""

from trainctl.spec.config import Config
from trainctl.spec.doc import SpecDoc, load_doc
from trainctl.spec.schema import (DataConfig, ModelConfig, Spec, SplitConfig, TrainConfig,
                                  load_spec)
from trainctl.spec.yaml_loader import SpecLoader, render_path

__all__ = ["Config", "DataConfig", "ModelConfig", "Spec", "SpecDoc", "SpecLoader",
           "SplitConfig", "TrainConfig", "load_doc", "load_spec", "render_path"]
