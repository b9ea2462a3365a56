"""Loss functions: the fixed losses, the teacher-set families (DLN, parametric, composite)
and the base loss a family starts from (docs/design.md §6). Imports no teacher, env or command."""
