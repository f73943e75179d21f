"""YAML spec → typed, validated spec. Imports no torch or numpy.

- :func:`load_spec` reads a spec file and returns a :class:`Spec`;
- :class:`SpecDoc` (``spec.doc``) locates values and validates a section with a
  :class:`Config` subclass, reporting every error with file, line and key; it merges
  ``base:`` specs (:mod:`.inherit`) and applies ``--set`` overrides (:mod:`.overrides`);
- :mod:`.kinds` holds each registered type's options and rules, :mod:`.jsonschema` the
  JSON Schema for editors;
- :class:`Config` is the base class of the configs of registered things.
"""

from trainctl.spec.config import Config
from trainctl.spec.doc import Origin, SpecDoc, load_doc
from trainctl.spec.overrides import Override, flag_overrides, parse_override
from trainctl.spec.schema import (DataConfig, ModelConfig, Spec, SplitConfig, TrainConfig,
                                  load_spec)
from trainctl.spec.yaml_loader import SpecLoader, render_path

__all__ = ["Config", "DataConfig", "ModelConfig", "Origin", "Override", "Spec", "SpecDoc",
           "SpecLoader", "SplitConfig", "TrainConfig", "flag_overrides", "load_doc", "load_spec",
           "parse_override", "render_path"]
