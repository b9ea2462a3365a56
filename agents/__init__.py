"""Teachers that act in the student-training environment."""

from agents.base import Teacher
from agents.lstm_teacher import LSTMTeacher

__all__ = ["LSTMTeacher", "Teacher"]
