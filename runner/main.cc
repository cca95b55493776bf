// placeholder: replaced by the runner implementation
int main() { return 0; }
