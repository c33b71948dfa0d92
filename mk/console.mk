# The console page is embedded in the binary (.incbin in runtime/admin/console.c): the
# object depends on the page, which the compiler's dependency files cannot know.
$(BUILD)/obj/runtime/admin/console.o: runtime/admin/console.html
