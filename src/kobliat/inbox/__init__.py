"""The webhook inbox: every verified delivery is stored before it is answered, then processed."""
