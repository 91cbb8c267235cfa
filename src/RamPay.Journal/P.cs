namespace RamPay.Journal; public static class Placeholder {}
