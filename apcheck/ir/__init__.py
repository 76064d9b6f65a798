"""The intermediate representation shared by every back end."""
