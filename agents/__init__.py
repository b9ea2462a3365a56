"""Teachers that act in the student-training environment."""

from agents.base import Teacher
from agents.control_teacher import ControlTeacher
from agents.fixed_loss import FIXED_LOSSES, FixedLossTeacher
from agents.lstm_teacher import LSTMTeacher
from agents.mlp_teacher import MLPTeacher
from agents.reinforce_teacher import ReinforceTeacher
from agents.schedule_teacher import ScheduleTeacher

__all__ = [
    "FIXED_LOSSES",
    "ControlTeacher",
    "FixedLossTeacher",
    "LSTMTeacher",
    "MLPTeacher",
    "ReinforceTeacher",
    "ScheduleTeacher",
    "Teacher",
]
