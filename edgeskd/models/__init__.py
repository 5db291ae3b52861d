"""Teachers, the student factory, model families and checkpoints."""

from edgeskd.models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from edgeskd.models.families import family_of, get_family, list_families, register_family
from edgeskd.models.students import (ModelProfile, StudentSpec, build_student, count_macs, count_parameters,
                                     profile_model, teacher_architecture)
from edgeskd.models.teacher import create_model, load_teacher, load_weights_strict, read_state_dict

__all__ = [
    "Checkpoint", "load_checkpoint", "save_checkpoint", "family_of", "get_family", "list_families",
    "register_family", "ModelProfile", "StudentSpec", "build_student", "count_macs", "count_parameters",
    "profile_model", "teacher_architecture", "create_model", "load_teacher", "load_weights_strict", "read_state_dict",
]
