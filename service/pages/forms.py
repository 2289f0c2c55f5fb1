"""The pages' only state-changing forms, CSRF-protected by Flask-WTF."""

from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField
from wtforms.validators import DataRequired, Length


class SignInForm(FlaskForm):
    key = PasswordField(
        "API key",
        validators=[DataRequired(message="Enter your API key."), Length(max=200)],
        render_kw={"autocomplete": "current-password", "spellcheck": "false"},
    )
    next = HiddenField()


class SignOutForm(FlaskForm):
    """Only its CSRF token: signing out must come from this site."""
