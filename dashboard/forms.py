"""Dashboard forms: every action states a reason; the kill-switch also needs an explicit confirmation."""

from __future__ import annotations

import json

from django import forms

from dashboard.models import AlertComparison, AlertMetric, AlertRule

KILL_SWITCH_KEY = "features.push_resync.killSwitch"


class DeviceSearchForm(forms.Form):
    q = forms.CharField(
        required=False,
        max_length=200,
        strip=True,
        label="Username, email or token prefix",
        widget=forms.TextInput(attrs={"placeholder": "alice, alice@example.com or a token prefix", "autofocus": True}),
    )


class DeactivateDeviceForm(forms.Form):
    reason = forms.CharField(max_length=200, strip=True, widget=forms.TextInput(attrs={"placeholder": "why"}))


class FlagEditForm(forms.Form):
    """The value is typed as JSON (true, 200, [1500, 3000]); the flags service validates it by type."""

    value = forms.CharField(max_length=10_000, widget=forms.Textarea(attrs={"rows": 3}))
    reason = forms.CharField(max_length=500, strip=True, widget=forms.TextInput(attrs={"placeholder": "why"}))
    confirm = forms.BooleanField(required=False, label="I understand this changes behaviour for every client now")

    def __init__(self, *args, flag_key: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.flag_key = flag_key
        if flag_key == KILL_SWITCH_KEY:
            self.fields["confirm"].required = True
            self.fields["confirm"].label = "Yes, change the global push kill-switch"

    def clean_value(self):
        raw = self.cleaned_data["value"]
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise forms.ValidationError('Enter a JSON value, e.g. true, 200, 0.5 or ["a"]') from exc


class AlertRuleForm(forms.ModelForm):
    threshold = forms.FloatField(min_value=0, max_value=1, help_text="a fraction, e.g. 0.9 for 90 %")
    # Choices come from messaging.queries.organization_choices() (set by the view).
    organization_id = forms.TypedChoiceField(coerce=int, required=False, empty_value=None, label="Organization")

    class Meta:
        model = AlertRule
        fields = ["name", "metric", "comparison", "threshold", "window_minutes", "min_volume"]
        widgets = {
            "metric": forms.Select(choices=AlertMetric.choices),
            "comparison": forms.Select(choices=AlertComparison.choices),
        }
