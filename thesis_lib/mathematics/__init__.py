"""What the thesis defines and states, as functions and modules; it trusts its inputs and imports only the
ground floor."""
