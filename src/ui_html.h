#ifndef RL_UI_HTML_H
#define RL_UI_HTML_H

/* The status page, ui/index.html, embedded at build time by
 * src/embed_ui.sh (src/ui_html.c is generated). Static, any thread. */
extern const char RL_UI_HTML[];
extern const unsigned long RL_UI_HTML_LEN;

#endif
