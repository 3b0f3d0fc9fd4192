from relay.urls_log import patterns as log_patterns
from relay.urls_troubleshoot import patterns as troubleshoot_patterns

app_name = "relay"
urlpatterns = log_patterns + troubleshoot_patterns
