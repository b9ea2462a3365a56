"""The gymnasium environment in which teachers act: `l2t/StudentTraining-v0`."""

from gymnasium.envs.registration import register, registry

from envs.student_training import StudentTrainingEnv

ENV_ID = "l2t/StudentTraining-v0"

if ENV_ID not in registry:
    register(id=ENV_ID, entry_point="envs.student_training:StudentTrainingEnv")

__all__ = ["ENV_ID", "StudentTrainingEnv"]
