from accounts.urls_members import patterns as member_patterns
from accounts.urls_users import patterns as user_patterns

app_name = "accounts"
urlpatterns = user_patterns + member_patterns
