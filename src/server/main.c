/* main.c - parleyd entry point. */
int main(void) { return 0; }
