// Runs in <head>, before the page is drawn: tells the style sheet that scripts run, so
// that narrow screens fold the navigation behind the Menu button without a flash (with
// scripts off the navigation simply stays open).
document.documentElement.classList.add("js");
